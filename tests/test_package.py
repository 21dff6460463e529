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


def test_the_wheel_ships_every_subpackage_without_listing_them(tmp_path):
    """setup.py discovers sub-packages: a new folder with an __init__.py needs no pyproject edit."""
    import shutil
    import subprocess
    import sys
    import zipfile

    # a copy of the source, so no build/ folder (stale or not) in the checkout is used or left behind
    src = tmp_path / "src"
    skip = shutil.ignore_patterns(
        ".git", ".venv", ".ci-venv", "build", "dist", "*.egg-info", "__pycache__", "*.zarr", "swarmcast-demo"
    )
    shutil.copytree(REPO, src, ignore=skip)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    out = subprocess.run(
        [*pip_wheel, "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("swarmcast-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "swarmcast/" + str(init.relative_to(REPO))
        for layer in ("kernels", "ops", "pipelines")
        for init in (REPO / layer).rglob("__init__.py")
    }
    assert len(expected) > 15 and expected <= names, sorted(expected - names)
    assert "swarmcast/pipelines/demo.yaml" in names
    assert not any(n.startswith(("tests/", "swarmcast/tests/", "support/")) for n in names)  # helpers stay out


def test_the_readme_layout_names_every_subpackage():
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("## Layout") :].split("```")[1]
    for layer in ("kernels", "ops", "pipelines"):
        for init in (REPO / layer).rglob("__init__.py"):
            folder = init.parent
            if folder.parent.name == "stages":
                continue  # one folder per stage kind: the README names the pattern, not each
            assert f"{folder.name}/" in block, f"README's layout does not show {folder.relative_to(REPO)}"


def test_stages_do_not_import_each_other():
    """What two stages share lives in pipelines/ensemble or pipelines/train, not in a stage."""
    import ast

    stages = REPO / "pipelines" / "stages"
    kinds = {p.stem for p in stages.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in stages.iterdir() if (p / "__init__.py").exists()
    }
    for path in stages.rglob("*.py"):
        if path.parent == stages and path.stem == "__init__":
            continue  # the registry imports every stage
        own = path.stem if path.parent == stages else path.parent.name
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("swarmcast.pipelines.stages.")
            ):
                other = node.module.split(".")[3]
                assert other == own, f"{path.relative_to(REPO)} imports the {other} stage"
    assert {"hindcast", "sample_diffusion", "train_sfno", "train_diffusion", "score"} <= kinds
