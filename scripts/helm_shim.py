"""A minimal `helm` command over helm-python-sdk (the Helm v4 engine as a library).

A test stand-in, not helm: it supports what the tests need and nothing else.
`helm template NAME CHART [-n|--namespace NS] [-f|--values FILE]... [--set k=v]...
[--kube-version V] [-a|--api-versions G/V]...` (each flag also as `--flag=value`; a values
file may be `-` or a pipe such as `/dev/fd/N`; `--kube-version` and `--api-versions` set
`.Capabilities` through the engine's render options) and `helm lint CHART`. Exit 1 with
the engine's message on failure. With HELM_SHIM_ARGV_LOG set, the arguments it was given
are appended to that file as one JSON line (tests check what a wrapper passed to helm).
"""
import json
import os
import sys

# Flags given as `--flag=value` are split in two before parsing.
_VALUE_FLAGS = ("--namespace", "--values", "--set", "--kube-version", "--api-versions")


def _split_inline(args):
    out = []
    for a in args:
        name, eq, value = a.partition("=")
        if eq and name in _VALUE_FLAGS:
            out.extend([name, value])
        else:
            out.append(a)
    return out


def _render_with_capabilities(chart, values, name, namespace, kube_version, api_versions):
    """The engine's own render call with the options helm's --kube-version and
    --api-versions set (helm-python-sdk's Chart.render does not expose them)."""
    from helm_python import _native

    opts = {"name": name, "namespace": namespace}
    if kube_version is not None:
        opts["kube_version"] = kube_version
    if api_versions:
        opts["api_versions"] = api_versions
    rendered = _native.call_string(
        "helm_render", chart._raw(), json.dumps(values), json.dumps(opts)
    )
    return json.loads(rendered)


def _parse_set(values, expr):
    key, _, raw = expr.partition("=")
    node = values
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    if raw.startswith("{") and raw.endswith("}"):
        # Helm's list syntax: --set k={a,b}
        node[parts[-1]] = [x for x in raw[1:-1].split(",") if x]
        return
    try:
        node[parts[-1]] = json.loads(raw)
    except ValueError:
        node[parts[-1]] = raw


def _merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v


def main(argv):
    import helm_python as helm

    if not argv:
        print("usage: helm template|lint ...", file=sys.stderr)
        return 2
    log = os.environ.get("HELM_SHIM_ARGV_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(argv) + "\n")
    cmd, rest = argv[0], _split_inline(argv[1:])
    if cmd == "lint":
        res = helm.lint(rest[0])
        errors = [m for m in res.get("messages", []) if m.get("severity", 0) >= 3]
        for m in res.get("messages", []):
            print(f"[{m.get('severity')}] {m.get('path')}: {m.get('error')}")
        return 1 if errors or res.get("errors") else 0
    if cmd == "template":
        positional, values, namespace = [], {}, "default"
        kube_version, api_versions = None, []
        i = 0
        while i < len(rest):
            a = rest[i]
            if a in ("-n", "--namespace"):
                namespace = rest[i + 1]
                i += 2
            elif a in ("-f", "--values"):
                path = rest[i + 1]
                text = sys.stdin.read() if path == "-" else open(path).read()
                loaded = json.loads(text) if text.lstrip().startswith("{") else _yaml(text)
                _merge(values, loaded or {})
                i += 2
            elif a == "--set":
                _parse_set(values, rest[i + 1])
                i += 2
            elif a == "--kube-version":
                kube_version = rest[i + 1]
                i += 2
            elif a in ("-a", "--api-versions"):
                api_versions.extend(x for x in rest[i + 1].split(",") if x)
                i += 2
            elif a.startswith("-"):
                print(f"Error: unknown flag: {a}", file=sys.stderr)
                return 1
            else:
                positional.append(a)
                i += 1
        name, chart_dir = positional[0], positional[1]
        chart = helm.Chart.load(chart_dir)
        try:
            if kube_version is None and not api_versions:
                out = chart.render(values, name=name, namespace=namespace)
            else:
                out = _render_with_capabilities(
                    chart, values, name, namespace, kube_version, api_versions
                )
        except Exception as e:  # the engine's error names file:line
            print(f"Error: {e}", file=sys.stderr)
            return 1
        for path in sorted(out):
            body = out[path]
            if path.endswith("NOTES.txt") or not body.strip():
                continue
            sys.stdout.write(f"---\n# Source: {path}\n{body}")
            if not body.endswith("\n"):
                sys.stdout.write("\n")
        return 0
    print(f"helm shim: unsupported command {cmd}", file=sys.stderr)
    return 2


def _yaml(text):
    try:
        import yaml  # PyYAML, when present

        return yaml.safe_load(text)
    except ImportError:
        raise SystemExit("helm shim: -f with YAML needs PyYAML; pass JSON instead")
