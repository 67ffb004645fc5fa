"""Run a task inside a real image's root file system (opt-in, for testing images).

By default the local agent runs a container's command with the host's interpreter.
``ImageRootStarter`` (a process starter, starters.py) maps image references to OCI
runtime bundles (the directory ``umoci unpack`` makes: ``config.json`` + ``rootfs/``);
a task of such an image runs its container's argv unchanged inside ``chroot rootfs``,
with the image's environment, user and working directory, plus the task's environment
(AWS endpoint, credentials, overrides): what Fargate would do with that image. The
task gets a private mount namespace with /proc and the host's /dev mounted in the
image (as a container runtime would: psutil, which dask imports, reads /proc;
multiprocessing needs /dev/shm), gone when it ends. Needs root (unshare, mount, chroot).

    Sandbox(starters=[ImageRootStarter({"127.0.0.1:5000/runner@sha256:...": "/tmp/bundle"})])
"""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .starters import ContainerSpec, TaskProcess, start_process_group

# libc is loaded here, not in the forked child (no dlopen between fork and exec).
_LIBC = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNS = 0x00020000
_MS_BIND, _MS_REC, _MS_PRIVATE = 0x1000, 0x4000, 0x40000

# The agent's host-side values that must not leak into the image's environment.
_HOST_ONLY = ("PATH", "HOME")


@dataclass(frozen=True)
class ImageRoot:
    rootfs: str
    env: dict[str, str]
    uid: int
    gid: int
    cwd: str

    @classmethod
    def from_bundle(cls, bundle_dir: str) -> ImageRoot:
        with open(os.path.join(bundle_dir, "config.json")) as f:
            spec = json.load(f)
        process = spec.get("process") or {}
        env = dict(item.partition("=")[::2] for item in process.get("env") or [])
        user = process.get("user") or {}
        root = (spec.get("root") or {}).get("path", "rootfs")
        return cls(
            rootfs=os.path.join(bundle_dir, root),
            env=env,
            uid=int(user.get("uid", 0)),
            gid=int(user.get("gid", 0)),
            cwd=process.get("cwd") or "/",
        )

    def environment(self, task_env: Mapping[str, str]) -> dict[str, str]:
        """The image's env with the task's on top (but the image's PATH and HOME)."""
        env = dict(self.env)
        env.update({k: v for k, v in task_env.items() if k not in _HOST_ONLY})
        return env

    def enter(self) -> Callable[[], None]:
        """A ``preexec_fn``: chroot, cd, then drop to the image's user (in that order)."""

        proc = os.path.join(self.rootfs, "proc").encode()
        dev = os.path.join(self.rootfs, "dev").encode()

        def preexec() -> None:
            # A private mount namespace: the /proc mount never shows on the host.
            _check(_LIBC.unshare(_CLONE_NEWNS), "unshare")
            _check(_LIBC.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "mount")
            _check(_LIBC.mount(b"proc", proc, b"proc", 0, None), "mount proc")
            _check(_LIBC.mount(b"/dev", dev, None, _MS_BIND | _MS_REC, None), "bind /dev")
            os.chroot(self.rootfs)
            os.chdir(self.cwd)
            os.setgroups([])
            os.setgid(self.gid)
            os.setuid(self.uid)

        return preexec


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


class ImageRootStarter:
    """Starts the tasks of the registered images (image reference -> bundle dir) chrooted."""

    def __init__(self, roots: Mapping[str, str]) -> None:
        self._roots = dict(roots)

    def accepts(self, spec: ContainerSpec) -> bool:
        return spec.image in self._roots

    def start(self, spec: ContainerSpec) -> TaskProcess:
        root = ImageRoot.from_bundle(self._roots[spec.image])
        # The image's own interpreter: the argv runs as the image would run it.
        return start_process_group(
            spec.argv, spec, env=root.environment(spec.env), preexec_fn=root.enter()
        )

    def close(self) -> None:
        pass
