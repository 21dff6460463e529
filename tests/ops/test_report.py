"""The report leaves a notebook's matplotlib set-up alone."""

import subprocess
import sys


def test_importing_and_drawing_a_report_keeps_the_callers_backend(tmp_path):
    script = f"""
import matplotlib
matplotlib.use("svg")  # what a user chose before importing swarmcast
import matplotlib.pyplot as plt
import swarmcast.ops.verification.report as report
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
fig, axes = report.figure_grid(1, 2)
axes[0, 0].plot([0, 1], [1, 0])
name = report.save_png(fig, __import__("pathlib").Path({str(tmp_path)!r}), "drawn.png")
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert plt.get_fignums() == [], plt.get_fignums()  # no figure left in pyplot's registry
print(name)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "drawn.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
