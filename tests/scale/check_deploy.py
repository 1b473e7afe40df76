#!/usr/bin/env python3
"""Checks the deploy files against the binary they start, as far as this machine allows (no
Kubernetes cluster, no HTCondor here): the Kubernetes manifests parse and hold the kinds the docs
name, and every `tessera serve ROLE ...` command line in deploy/ (Kubernetes containers, the
HTCondor submit description, the Slurm batch script) names a role and only options that
`tessera serve ROLE --help` (or the global `tessera --help`) lists.

usage: check_deploy.py TESSERA_BIN REPO_ROOT
"""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

tessera, root = sys.argv[1], Path(sys.argv[2])
failures = []


def options_of(*words):
    out = subprocess.run([tessera, *words, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", out))


global_options = options_of()


def check_command(where, args):
    if len(args) < 2 or args[0] != "serve":
        failures.append(f"{where}: not a `tessera serve ROLE` command: {args}")
        return
    try:
        known = options_of("serve", args[1]) | global_options
    except subprocess.CalledProcessError:
        failures.append(f"{where}: no role `{args[1]}`")
        return
    for a in args[2:]:
        flag = a.split("=", 1)[0]
        if flag.startswith("--") and flag not in known:
            failures.append(f"{where}: `tessera serve {args[1]}` has no option {flag}")


# Kubernetes: a StatefulSet for the stack, a Deployment for the workers, a Service; every container.
docs = [d for d in yaml.safe_load_all((root / "deploy/kubernetes/tessera.yaml").read_text()) if d]
kinds = sorted(d["kind"] for d in docs)
if kinds != ["Deployment", "Service", "StatefulSet"]:
    failures.append(f"kubernetes: kinds {kinds}")
for d in docs:
    for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        if c.get("command") != ["tessera"]:
            failures.append(f"kubernetes {d['kind']}/{c['name']}: command {c.get('command')}")
        check_command(f"kubernetes {d['kind']}/{c['name']}", [str(a) for a in c["args"]])

# HTCondor: the arguments line, its $(macros) taken as values.
sub = (root / "deploy/htcondor/tessera-worker.sub").read_text()
m = re.search(r'^arguments\s*=\s*"(.*)"\s*$', sub, re.M)
if not m:
    failures.append("htcondor: no arguments line")
else:
    check_command("htcondor", shlex.split(m.group(1)))
if not re.search(r"^queue\b", sub, re.M):
    failures.append("htcondor: no queue statement")

# Slurm: the exec line of the batch script (continued lines joined).
script = (root / "deploy/slurm/tessera-worker.sbatch").read_text().replace("\\\n", " ")
m = re.search(r'^exec "\$\{TESSERA_BIN:-tessera\}" (.*)$', script, re.M)
if not m:
    failures.append("slurm: no exec line")
else:
    check_command("slurm", shlex.split(m.group(1)))

if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"deploy files agree with {tessera}: kubernetes {kinds}, htcondor, slurm")
