"""A minimal `helm` command over helm-python-sdk (the Helm v4 engine as a library).

Supports what the tests need: `helm template NAME CHART [-n NS] [-f FILE]... [--set k=v]...`
and `helm lint CHART`. Exit 1 with the engine's message on failure.
"""
import json
import sys


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
    cmd, rest = argv[0], argv[1:]
    if cmd == "lint":
        res = helm.lint(rest[0])
        errors = [m for m in res.get("messages", []) if m.get("severity", 0) >= 3]
        for m in res.get("messages", []):
            print(f"[{m.get('severity')}] {m.get('path')}: {m.get('error')}")
        return 1 if errors or res.get("errors") else 0
    if cmd == "template":
        positional, values, namespace = [], {}, "default"
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
            else:
                positional.append(a)
                i += 1
        name, chart_dir = positional[0], positional[1]
        chart = helm.Chart.load(chart_dir)
        try:
            out = chart.render(values, name=name, namespace=namespace)
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
