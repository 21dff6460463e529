"""Finding Ray worker processes for fault-injection tests (killing an actor or a trainer)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path


def pids_running(fragment: str) -> list[int]:
    """Process ids whose command line contains ``fragment`` (Ray names worker processes after
    their actor class, e.g. "RayTrainWorker" or "UnitRunner"): for fault-injection tests."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if fragment in (entry / "cmdline").read_bytes().decode(errors="ignore"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def descendants(root: int) -> set[int]:
    """``root`` and every process below it (by parent pid, read from /proc)."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        grown = {pid for pid, ppid in parent.items() if ppid in tree}
        grew = not grown <= tree
        tree |= grown
    return tree


def _hex_address(text: str) -> str:
    """/proc/net/tcp{,6} address (little-endian hex words) -> printable IP."""
    import ipaddress

    raw = bytes.fromhex(text)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(words)
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


def listening_sockets(pids: set[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every listening TCP socket the processes ``pids`` hold."""
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                address, port = fields[1].split(":")
                listening[fields[9]] = (_hex_address(address), int(port, 16))
    found = []
    for pid in pids:
        try:
            links = [str(fd.readlink()) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        for link in links:
            inode = link[len("socket:[") : -1] if link.startswith("socket:[") else None
            if inode in listening:
                found.append((*listening[inode], pid))
    return found


class Killer:
    """A thread that SIGKILLs the first process whose command line holds ``fragment`` (Ray
    titles a worker "ray::<Class>.<method>" or "ray::<task>" while it runs one), polling every
    ``poll_s`` until ``timeout_s``. Use as a context manager; ``killed`` lists the pids killed."""

    def __init__(self, fragment: str, *, poll_s: float = 0.02, timeout_s: float = 120.0) -> None:
        self.fragment, self.poll_s, self.timeout_s = fragment, poll_s, timeout_s
        self.killed: list[int] = []
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        deadline = time.time() + self.timeout_s
        while time.time() < deadline and not self.killed:
            pids = pids_running(self.fragment)
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                self.killed.append(pids[0])
            time.sleep(self.poll_s)

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=5)
