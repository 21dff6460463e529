"""The namespace mapping resolves to this repository's folders (an editable install)."""

from pathlib import Path

import swarmcast.kernels
import swarmcast.ops
import swarmcast.pipelines

REPO = Path(__file__).resolve().parents[1]


def test_subpackages_resolve_inside_this_repository():
    for module, folder in [(swarmcast.kernels, "kernels"), (swarmcast.ops, "ops"), (swarmcast.pipelines, "pipelines")]:
        assert Path(module.__file__).resolve() == REPO / folder / "__init__.py"


def test_only_pipelines_import_ray():
    """Layer rule: kernels and ops never import ray (checked on the source text)."""
    for folder in ("kernels", "ops"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            assert "import ray" not in text and "from ray" not in text, path


def test_kernels_do_no_io_or_storage_imports():
    for path in (REPO / "kernels").rglob("*.py"):
        text = path.read_text()
        for banned in ("import xarray", "import zarr", "open(", "import ray"):
            assert banned not in text, f"{path}: {banned}"
