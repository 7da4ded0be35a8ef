"""Running Debian's stock QEMU tools with the blkin filter preloaded.

Every call has a timeout: a hung QEMU fails the test instead of hanging it.
"""
import json
import os
import subprocess

BUILD = os.environ.get("BLKIN_BUILD_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
# BLKIN_PRELOAD: scripts/test.sh's sanitizer stage gives ./build's (QEMU is not instrumented).
PRELOAD = os.environ.get("BLKIN_PRELOAD") or os.path.join(BUILD, "qemu-filter", "libblkin-preload.so")
PRELOAD_WRONG = os.path.join(BUILD, "qemu-filter", "libblkin-preload-wrongstamp.so")


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
        e["LD_PRELOAD"] = preload
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
