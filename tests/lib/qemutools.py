# SPDX-License-Identifier: GPL-2.0-or-later
"""Running Debian's stock QEMU tools with the blkin filter preloaded.

Every call has a timeout: a hung QEMU fails the test instead of hanging it.

In a sanitizer build (./build-asan, scripts/test.sh stage 2) the preload
shim and the filter are ASan-instrumented while QEMU is not: the ASan
runtime must then be the first object loaded, so ld_preload() puts it in
LD_PRELOAD ahead of the shim (stage 2 logs every ASan report for its scan).
"""
import functools
import json
import os
import subprocess

BUILD = os.environ.get("BLKIN_BUILD_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
# Always the build root's own: in the sanitizer stage that is the instrumented
# preload, loaded after the ASan runtime (ld_preload below); BLKIN_PRELOAD is
# for the VMs' QEMU (vm.py), which that stage runs with ./build's.
PRELOAD = os.path.join(BUILD, "qemu-filter", "libblkin-preload.so")
PRELOAD_WRONG = os.path.join(BUILD, "qemu-filter", "libblkin-preload-wrongstamp.so")
FILTER = os.path.join(BUILD, "qemu-filter", "blkin-filter.so")


def needed(obj):
    """The DT_NEEDED entries of a shared object."""
    out = subprocess.run(["readelf", "-d", obj], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    return [line.split("[", 1)[1].split("]", 1)[0] for line in out.splitlines()
            if "(NEEDED)" in line]


@functools.lru_cache(maxsize=None)
def sanitizer_runtime(obj=PRELOAD):
    """The ASan runtime (a path) if obj was built with -fsanitize=address,
    else None."""
    if not any(n.startswith("libasan.so") for n in needed(obj)):
        return None
    cc = os.environ.get("CC", "gcc")
    path = subprocess.run([*cc.split(), "-print-file-name=libasan.so"], capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()
    return os.path.realpath(path)


def ld_preload(lib):
    """The LD_PRELOAD value that preloads lib into an uninstrumented program:
    lib itself, after the ASan runtime if lib needs it."""
    rt = sanitizer_runtime(lib) if lib and os.path.exists(lib) else None
    return f"{rt} {lib}" if rt else lib


def blkin_json(child, **opts):
    """A json: filename for a blkin node on top of @child (a dict or node name)."""
    d = {"driver": "blkin", "file": child}
    d.update({k.replace("_", "-"): v for k, v in opts.items()})
    return "json:" + json.dumps(d)


def file_node(path, fmt="raw"):
    node = {"driver": "file", "filename": path}
    return node if fmt is None else {"driver": fmt, "file": node}


def run(argv, preload=PRELOAD, timeout=120, check=False, env=None):
    """Runs a QEMU tool; returns the CompletedProcess (text mode)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    if preload:
        e["LD_PRELOAD"] = ld_preload(preload)
    else:
        e.pop("LD_PRELOAD", None)
    p = subprocess.Popen(["timeout", "-k", "5", str(timeout), *argv], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate()
    cp = subprocess.CompletedProcess(argv, p.returncode, out, err)
    if check and p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({p.returncode}): {err[-2000:]}")
    return cp


def qemu_io(image, *cmds, preload=PRELOAD, timeout=120, extra=()):
    argv = ["qemu-io", *extra]
    for c in cmds:
        argv += ["-c", c]
    argv.append(image)
    return run(argv, preload=preload, timeout=timeout)


def create(path, size, fmt="raw", *opts):
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, *opts, path, str(size)],
                   check=True, timeout=60)
