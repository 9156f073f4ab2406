#!/usr/bin/env python3
"""Usage: tools/docker-check.py DIST_DIR MAJOR SUPPORTED_MAJORS     (as root; part of deb-test)

Checks the example Dockerfiles in packaging/docker/ as far as a machine without a Docker engine
can:
  - every FROM is postgres:${PG_MAJOR}-CODENAME with CODENAME this machine's Debian release (the
    packages are built here; an older Debian in the image could lack the libc they need), and
    ARG PG_MAJOR defaults to a supported major;
  - Dockerfile.build's last stage installs exactly as Dockerfile does (same COPY target, same
    RUN), and its build stage runs tools/deb.sh extension with a pg_config path that, for MAJOR,
    is where this machine's Debian package puts pg_config; every apt package it installs exists
    in this machine's apt sources (with PG_MAJOR=MAJOR);
  - Dockerfile's own steps run here, with PG_MAJOR=MAJOR and DIST_DIR as the build context:
    COPY (into the same path) and RUN through /bin/sh -c as Docker does; afterwards the package
    is installed and the COPY target is gone. The caller removes the package again.
Not checked here (no Docker engine, no network but package registries): pulling postgres:NN,
the build stage's rustup and cargo-pgrx install and its build, majors other than MAJOR.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKER = os.path.join(ROOT, "packaging", "docker")


def fail(msg):
    print(f"docker-check: FAILED: {msg}")
    sys.exit(1)


def ok(msg):
    print(f"docker-check: ok - {msg}")


def instructions(path):
    """[(INSTRUCTION, arguments)] with continuation lines joined and comments dropped."""
    out, cur = [], ""
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1]  # Docker drops the backslash and the newline
            continue
        cur += line
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        cur = ""
    return out


def stages(instrs):
    """Split into stages at FROM; the ARGs before the first FROM are stage 0."""
    result = [[]]
    for ins in instrs:
        if ins[0] == "FROM":
            result.append([])
        result[-1].append(ins)
    return result


def subst(text, env):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)


def main():
    dist, major, supported = sys.argv[1], sys.argv[2], sys.argv[3].split()
    codename = dict(l.rstrip("\n").split("=", 1) for l in open("/etc/os-release") if "=" in l)["VERSION_CODENAME"]
    runtime = instructions(os.path.join(DOCKER, "Dockerfile"))
    build = instructions(os.path.join(DOCKER, "Dockerfile.build"))

    for name, instrs in (("Dockerfile", runtime), ("Dockerfile.build", build)):
        args = [a for i, a in stages(instrs)[0] if i == "ARG"]
        m = [re.fullmatch(r"PG_MAJOR=(\d+)", a) for a in args]
        if not m or not m[0] or m[0].group(1) not in supported:
            fail(f"{name}: ARG PG_MAJOR before FROM must default to one of {supported}: {args}")
        froms = [a for i, a in instrs if i == "FROM"]
        for f in froms:
            if not re.fullmatch(r"postgres:\$\{PG_MAJOR\}-" + codename + r"( AS \w+)?", f):
                fail(f"{name}: FROM {f}: expected postgres:${{PG_MAJOR}}-{codename}")
        ok(f"{name}: FROM postgres:${{PG_MAJOR}}-{codename} ({len(froms)}x), PG_MAJOR default {m[0].group(1)} in {' '.join(supported)}")

    # The last stage of Dockerfile.build installs as Dockerfile does.
    last = [ins for ins in stages(build)[-1] if ins[0] in ("COPY", "RUN")]
    own = [ins for ins in stages(runtime)[-1] if ins[0] in ("COPY", "RUN")]
    if [i for i in last if i[0] == "RUN"] != [i for i in own if i[0] == "RUN"]:
        fail("Dockerfile.build's last stage does not RUN what Dockerfile runs")
    if [i[1].split()[-1] for i in last if i[0] == "COPY"] != [i[1].split()[-1] for i in own if i[0] == "COPY"]:
        fail("Dockerfile.build's last stage copies the package elsewhere than Dockerfile")
    ok("Dockerfile.build's last stage installs exactly as Dockerfile")

    # The build stage: its apt packages exist here, its build command is tools/deb.sh extension.
    env = {"PG_MAJOR": major}
    runs = [subst(a, env) for i, a in stages(build)[1] if i == "RUN"]
    apt_line = next((r for r in runs if "apt-get install" in r), None)
    if not apt_line:
        fail("Dockerfile.build's build stage installs no apt packages")
    pkgs = [w for w in apt_line.split("apt-get install", 1)[1].split() if not w.startswith("-") and w != "\\"]
    missing = [p for p in pkgs if subprocess.run(["apt-cache", "show", "--no-all-versions", p],
                                                 capture_output=True).returncode != 0]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        missing = [p for p in pkgs if subprocess.run(["apt-cache", "show", "--no-all-versions", p],
                                                     capture_output=True).returncode != 0]
    if missing:
        fail(f"Dockerfile.build's apt packages not in this machine's apt sources: {missing}")
    ok(f"Dockerfile.build: its {len(pkgs)} apt packages exist (PG_MAJOR={major}): {' '.join(pkgs)}")
    deb = [r for r in runs if r.startswith("tools/deb.sh ")]
    if len(deb) != 1:
        fail("Dockerfile.build's build stage must RUN tools/deb.sh once")
    words = deb[0].split()
    if words[1] != "extension" or len(words) != 4:
        fail(f"Dockerfile.build runs '{deb[0]}', not tools/deb.sh extension PG_CONFIG OUT_DIR")
    pg_config = words[2]
    dpkg = subprocess.run(["dpkg", "-S", pg_config], capture_output=True, text=True)
    if dpkg.returncode != 0 or not os.access(pg_config, os.X_OK):
        fail(f"Dockerfile.build's pg_config {pg_config} is no Debian package's file here")
    version = subprocess.run([pg_config, "--version"], capture_output=True, text=True).stdout.strip()
    if not version.startswith(f"PostgreSQL {major}."):
        fail(f"{pg_config} is {version}, not PostgreSQL {major}")
    ok(f"Dockerfile.build: {deb[0]} (pg_config from {dpkg.stdout.split(':')[0]}, {version})")

    # Dockerfile's own steps, here.
    env = dict(os.environ, PG_MAJOR=major, DEBIAN_FRONTEND="noninteractive")
    # Another process's apt run must not fail the image's apt-get: wait for dpkg's lock.
    fd, env["APT_CONFIG"] = tempfile.mkstemp(suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write('DPkg::Lock::Timeout "300";\n')
    targets = []
    try:
        for ins, arg in stages(runtime)[-1]:
            if ins == "COPY":
                *srcs, dest = subst(arg, env).split()
                files = [f for s in srcs for f in sorted(glob.glob(os.path.join(dist, s)))]
                if len(files) != 1:
                    fail(f"COPY {arg}: {len(files)} files match in {dist}, expected 1")
                shutil.rmtree(dest, ignore_errors=True)
                os.makedirs(dest)
                shutil.copy(files[0], dest)
                targets.append(dest)
                print(f"docker-check: COPY {os.path.basename(files[0])} {dest}")
            elif ins == "RUN":
                print(f"docker-check: RUN {arg}")
                run = subprocess.run(["/bin/sh", "-c", arg], env=env, capture_output=True, text=True)
                if run.returncode != 0:
                    print(run.stdout + run.stderr)
                    fail(f"RUN {arg}")
        left = [t for t in targets if os.path.exists(t)]
    finally:
        os.remove(env["APT_CONFIG"])
        for t in targets:
            shutil.rmtree(t, ignore_errors=True)
    pkg = f"postgresql-{major}-month-lock"
    status = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", pkg],
                            capture_output=True, text=True).stdout
    if not status.startswith("installed "):
        fail(f"after Dockerfile's RUN, {pkg} is '{status}'")
    if left:
        fail(f"Dockerfile's RUN left {left}")
    ok(f"Dockerfile's COPY and RUN here (PG_MAJOR={major}): {pkg} {status.split()[1]} installed, {' '.join(targets)} removed")


if __name__ == "__main__":
    main()
