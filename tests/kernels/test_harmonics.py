"""torch-harmonics loaded through ``swarmcast.kernels.harmonics``: without Inductor, nothing else changed.

Each check runs in a fresh interpreter, since what is measured is what the first import of the
package does to the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, os, sys
import torch
from swarmcast.ops.sfno.model import SFNOConfig, SFNOStepper  # imports torch-harmonics through us
loaded = "torch._inductor.compile_fx" in sys.modules
switch_after = os.environ.get("TORCHDYNAMO_DISABLE")
from torch_harmonics import SpectralConvS2
method = SpectralConvS2._contract_lwise
plain = lambda x: x  # noqa: E731
compiled_later = hasattr(torch.compile(plain), "_torchdynamo_orig_callable")
cfg = SFNOConfig(("h", "u"), 8, 16, embed_dim=4, num_layers=1)
torch.manual_seed(0)
with torch.no_grad():
    y = SFNOStepper(cfg, [0.0, 0.0], [1.0, 1.0], [1.0, 1.0])(torch.ones(2, 2, 8, 16))
print(json.dumps({
    "inductor_loaded": loaded,
    "switch_after": switch_after,
    "contract_is_plain": not hasattr(method, "_torchdynamo_orig_callable"),
    "compiled_later": compiled_later,
    "finite": bool(torch.isfinite(y).all()),
}))
"""


def _probe(env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_package_loads_without_inductor_and_leaves_torch_compile_working():
    env = {k: v for k, v in os.environ.items() if k != "TORCHDYNAMO_DISABLE"}
    got = _probe(env)
    # the one torch.compile of the package's import returned the method unchanged, so Inductor
    # (about 200 modules, over a second of start-up) was not imported ...
    assert got["inductor_loaded"] is False and got["contract_is_plain"] is True
    # ... the switch was put back, and a torch.compile made afterwards compiles as usual
    assert got["switch_after"] is None and got["compiled_later"] is True
    assert got["finite"] is True


def test_a_switch_the_user_set_is_left_as_it_was():
    got = _probe({**os.environ, "TORCHDYNAMO_DISABLE": "0"})
    assert got["switch_after"] == "0"
    assert got["inductor_loaded"] is False  # our import still ran with the switch on
