"""Ray orchestration: stages, config, CLI. The only layer that imports Ray."""
