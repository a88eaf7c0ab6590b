"""`nanochat-cli wgsl …` and the `tiny-agent-trainer` console script: the same commands.

    check                      wgpu, the adapter, naga, torch and its devices, the dataset, the configs
    list | show NAME | init    the TOML configs (engine.toml, wgsl_generation.toml) in --config-dir
    validate FILE…             naga's verdict, one line per problem, like a linter (exit 0 / 1 / 2)
    run FILE                   dispatch with test buffers (random, or a dataset pair's with --case ID)
    dataset                    generate the NL -> WGSL pairs (every shader validated and run)
    templates [NAME]           the template families, or one family's pair

Importing this module is cheap (argparse only): each handler imports what it uses, so `--help` stays quick.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path

from engine.errors import EngineError

log = logging.getLogger("nanochat_plugins.wgsl")
SCRIPT = "tiny-agent-trainer"


def _out(line: str = "") -> None:
    print(line, flush=True)


def _err(args: argparse.Namespace, message: str) -> None:
    print(f"{getattr(args, '_prog', 'nanochat-cli')}: error: {message}", file=sys.stderr, flush=True)


def _setup_logging(config_dir: str) -> None:
    """With <config dir>/engine.toml present, log to <log_path>/wgsl.log at its log_level (the original's
    behaviour); without it, nothing is written."""
    from nanochat_plugins.wgsl import config

    path = Path(config_dir) / config.ENGINE_FILE
    if not path.is_file() or any(getattr(h, "_wgsl", False) for h in log.handlers):
        return
    cfg = config.load(path, "engine")
    log_dir = Path(cfg.paths.log_path)  # type: ignore[attr-defined]
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_dir / "wgsl.log", encoding="utf-8")
    except OSError as e:
        raise EngineError(f"{path}: paths.log_path={str(log_dir)!r}: cannot write there ({e.strerror}): "
                          f"fix paths.log_path") from None
    handler._wgsl = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel({"WARN": "WARNING"}.get(cfg.log_level, cfg.log_level))  # type: ignore[attr-defined]


# ---- check

def cmd_check(args: argparse.Namespace) -> int:
    import time

    from nanochat_plugins.wgsl import config, dataset, gpu
    from nanochat_plugins.wgsl.validate import validate_source

    ok = True
    try:
        info = gpu.adapter_info()
        _out(f"wgpu     {info.wgpu_version} (wgpu-native {info.wgpu_native_version})")
        _out(f"adapter  {info.device}: {info.backend}, {info.adapter_type} ({info.description})")
        t0 = time.perf_counter()
        v = validate_source("@compute @workgroup_size(1) fn main() {}\n")
        bad = validate_source("fn f() -> f32 { return x; }\n")
        naga_ok = v.ok and not bad.ok and bad.diagnostics[0].line == 1
        _out(f"naga     {'ok' if naga_ok else 'NOT WORKING'}: validated two test shaders in "
             f"{(time.perf_counter() - t0) * 1e3:.1f} ms")
        ok = naga_ok
    except gpu.NoAdapter as e:
        _out("adapter  none: shaders can be neither validated nor run (everything else works)")
        _err(args, str(e))
        ok = False
    try:
        import torch

        devices = ["cpu"] + [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            devices.append("mps")
        _out(f"torch    {torch.__version__}: {', '.join(devices)}")
    except ImportError:
        _out("torch    not installed: pip install torch (training needs it)")
    try:
        recs = dataset.load()
        counts = {s: sum(r.split == s for r in recs) for s in dataset.SPLITS}
        _out(f"dataset  {len(recs)} pairs shipped ({', '.join(f'{s} {n}' for s, n in counts.items())})")
    except EngineError as e:
        _out(f"dataset  {e}")
    for name in (config.ENGINE_FILE, config.GENERATION_FILE):
        p = Path(args.config_dir) / name
        if not p.exists():
            _out(f"config   {p}: not there (nanochat-cli wgsl init writes the defaults)")
            continue
        try:
            config.load(p)
            _out(f"config   {p}: ok")
        except EngineError as e:
            _out(f"config   {e}")
            ok = False
    return 0 if ok else 1


# ---- configs

def cmd_list(args: argparse.Namespace) -> int:
    from nanochat_plugins.wgsl import config

    rows = config.list_configs(args.config_dir)
    if not rows:
        _out(f"{args.config_dir}: no .toml files (nanochat-cli wgsl init writes the defaults)")
        return 0
    width = max(len(p.stem) for p, _, _ in rows)
    for p, kind, problem in rows:
        _out(f"{p.stem:<{width}}  {kind:<10}  {'ok' if problem is None else problem}")
    return 0 if all(problem is None for _, _, problem in rows) else 1


def cmd_show(args: argparse.Namespace) -> int:
    from nanochat_plugins.wgsl import config

    path = config.resolve(args.name, args.config_dir)
    cfg = config.load(path)
    _out(f"# {path} ({config.kind_of(path)} config, valid; defaults filled in)")
    _out(config.to_toml(cfg, comments=not args.bare).rstrip("\n"))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from nanochat_plugins.wgsl import config

    for p in config.init(args.config_dir, args.force):
        _out(f"wrote {p}")
    return 0


# ---- shaders

def cmd_validate(args: argparse.Namespace) -> int:
    from nanochat_plugins.wgsl.validate import read_shader, validate_source

    _setup_logging(args.config_dir)
    code = 0
    valid = invalid = unreadable = 0
    for name in args.files:
        try:
            source = read_shader(name)
        except EngineError as e:
            _err(args, str(e))
            unreadable += 1
            code = 2
            continue
        v = validate_source(source)  # NoAdapter propagates: one line with the fix, exit 2
        log.info("validate %s: %s", name, "ok" if v.ok else v.diagnostics[0].format(name))
        if v.ok:
            valid += 1
            if not args.quiet:
                _out(f"{name}: ok")
        else:
            invalid += 1
            code = max(code, 1)
            for d in v.diagnostics:
                _out(d.format(name))
    if len(args.files) > 1:
        _out(f"{len(args.files)} files: {valid} valid, {invalid} invalid"
             + (f", {unreadable} unreadable" if unreadable else ""))
    return code


def _parse_sets(items: list[str] | None) -> dict[str, float]:
    out = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            out[key.strip()] = float(text)
        except ValueError:
            raise EngineError(f"--set {item}: expected FIELD=NUMBER, e.g. --set alpha=0.5") from None
    return out


def _parse_grid(text: str | None, n: int) -> tuple[int, int, int]:
    if not text:
        return (n, 1, 1)
    try:
        parts = [int(x) for x in text.split(",")]
        if not 1 <= len(parts) <= 3 or min(parts) < 1:
            raise ValueError
    except ValueError:
        raise EngineError(f"--grid {text}: expected X[,Y[,Z]] positive integers, e.g. --grid 32,32") from None
    parts += [1] * (3 - len(parts))
    return (parts[0], parts[1], parts[2])


def cmd_run(args: argparse.Namespace) -> int:
    from nanochat_plugins.wgsl import dataset, runner
    from nanochat_plugins.wgsl.reflect import reflect
    from nanochat_plugins.wgsl.validate import read_shader, validate_source
    from nanochat_plugins.wgsl.worker import ShaderWorker

    _setup_logging(args.config_dir)
    source = read_shader(args.file)
    v = validate_source(source)
    if not v.ok:
        for d in v.diagnostics:
            _out(d.format(args.file))
        return 1
    if not 1 <= args.n <= 1 << 22:
        raise EngineError(f"--n {args.n}: must be between 1 and {1 << 22}")
    if not 0 < args.timeout <= 86400:
        raise EngineError(f"--timeout {args.timeout}: must be a number of seconds above 0 (at most 86400)")
    r = reflect(source)
    ep = r.compute_entry(args.entry)
    if args.case:
        rec = dataset.find(args.case, args.dataset or dataset.BUNDLED)
        worker = ShaderWorker.shared(args.timeout)  # a child process: a shader that never ends is killed
        result = worker.run_case(source, rec.family, rec.params, rec.seed, args.entry)
        log.info("run %s against %s: %s", args.file, rec.id, result.message)
        _out(f"{args.file}: {ep.name} on the buffers of {rec.id} ({rec.family}): {result.message} "
             f"[{result.seconds * 1e3:.1f} ms]")
        return 0 if result.ok else 1
    grid = _parse_grid(args.grid, args.n)
    data = runner.auto_buffers(source, args.n, args.seed, _parse_sets(args.set), r)
    writable = [(b.group, b.binding) for b in r.bindings if b.writable]
    out, seconds = ShaderWorker.shared(args.timeout).dispatch(source, data, writable, grid, args.entry)
    groups = [runner.ceil_div(g, w) for g, w in zip(grid, ep.workgroup_size, strict=True)]
    _out(f"{args.file}: ran {ep.name} @workgroup_size{ep.workgroup_size} as {groups[0]}x{groups[1]}x{groups[2]} "
         f"workgroups over a {grid[0]}x{grid[1]}x{grid[2]} grid in {seconds * 1e3:.1f} ms")
    for b in r.bindings:
        key = (b.group, b.binding)
        role = "out" if b.writable else "in "
        _out(f"  {role} {runner.describe(b, out.get(key, data[key]), args.n)}")
    log.info("run %s: %.1f ms", args.file, seconds * 1e3)
    return 0


# ---- dataset and templates

def cmd_dataset(args: argparse.Namespace) -> int:
    from nanochat_plugins.wgsl import config, dataset

    _setup_logging(args.config_dir)
    cfg = None
    if args.config:
        cfg = config.load(args.config, "generation").dataset  # type: ignore[attr-defined]
    per_family = args.per_family or (cfg.per_family if cfg else dataset.PER_FAMILY)
    seed = args.seed if args.seed is not None else (cfg.seed if cfg else dataset.SEED)
    val = cfg.val_families if cfg else dataset.VAL_FAMILIES
    test = cfg.test_families if cfg else dataset.TEST_FAMILIES
    out = args.out or (cfg.path if cfg and cfg.path else "wgsl-dataset")

    def progress(line: str) -> None:
        log.info("dataset: %s", line)
        if not args.quiet:
            print(f"  {line}", file=sys.stderr, flush=True)

    report = dataset.generate(per_family, seed, val, test, args.family or None, check=not args.no_check,
                              progress=progress)
    command = f"nanochat-cli wgsl dataset --out {out} --per-family {per_family} --seed {seed}"
    command += "".join(f" --family {f}" for f in args.family or [])
    command += f" --config {args.config}" if args.config else ""
    command += " --no-check" if args.no_check else ""
    path = dataset.write(report, out, command, per_family, seed)
    counts = {s: sum(r.split == s for r in report.records) for s in dataset.SPLITS}
    _out(f"wrote {len(report.records)} pairs to {path}/ ({', '.join(f'{s} {n}' for s, n in counts.items())})")
    if report.checked and report.validate_s:
        _out(f"every shader validated and matched its numpy reference on {report.adapter}: validation median "
             f"{statistics.median(report.validate_s) * 1e3:.2f} ms, run median "
             f"{statistics.median(report.run_s) * 1e3:.1f} ms")
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    from nanochat_plugins.wgsl import dataset, templates

    if args.name:
        s = templates.sample(args.name, args.seed)
        _out(f"# {s.family} (seed {s.seed}, {dataset.split_of(s.family, dataset.VAL_FAMILIES, dataset.TEST_FAMILIES)}"
             f" split): {s.prompt}")
        _out(s.shader.rstrip("\n"))
        return 0
    width = max(len(n) for n in templates.FAMILIES)
    for name, fam in templates.FAMILIES.items():
        split = dataset.split_of(name, dataset.VAL_FAMILIES, dataset.TEST_FAMILIES)
        _out(f"{name:<{width}}  {split:<5}  {fam.summary}")
    return 0


# ---- the parser (shared by nanochat-cli wgsl and tiny-agent-trainer)

def setup(parser: argparse.ArgumentParser) -> None:
    """Sub-commands of `nanochat-cli wgsl` (and of `tiny-agent-trainer`)."""
    from nanochat_plugins.wgsl.config import DEFAULT_CONFIG_DIR

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config-dir", default=DEFAULT_CONFIG_DIR,
                        help=f"folder of engine.toml and wgsl_generation.toml (default: ./{DEFAULT_CONFIG_DIR})")
    sub = parser.add_subparsers(dest="wgsl_command", metavar="COMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])

    p = sub.add_parser("check", parents=[common], help="wgpu, the WebGPU adapter, naga, torch and devices")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("list", parents=[common], help="the TOML configs in the config folder, each checked")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", parents=[common], help="one config, validated, with its defaults filled in")
    p.add_argument("name", help="a config name in the config folder (engine, wgsl_generation) or a .toml path")
    p.add_argument("--bare", action="store_true", help="without the comments")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("init", parents=[common], help="write the default engine.toml and wgsl_generation.toml")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("validate", parents=[common], help="validate WGSL files with naga (exit 1 if any is invalid)")
    p.add_argument("files", nargs="+", metavar="FILE", help=".wgsl files")
    p.add_argument("-q", "--quiet", action="store_true", help="say nothing about valid files")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("run", parents=[common], help="dispatch a compute shader with test buffers and show them")
    p.add_argument("file", metavar="FILE", help="a .wgsl file with one @compute entry point (or name it: --entry)")
    p.add_argument("--entry", help="the @compute function to run")
    p.add_argument("--case", metavar="ID", help="run on a dataset pair's buffers (e.g. chromatic.mix-003) and "
                                                "compare with its numpy reference")
    p.add_argument("--dataset", metavar="DIR", help="the dataset --case looks in (default: the shipped one)")
    p.add_argument("--n", type=int, default=1024, help="elements of each runtime-sized array (default 1024)")
    p.add_argument("--grid", metavar="X[,Y[,Z]]", help="invocations to cover (default: N,1,1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input buffers")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds the shader may run before it is killed "
                                                               "(default 10)")
    p.add_argument("--set", nargs="+", action="extend", metavar="FIELD=NUMBER",
                   help="uniform values (default: u32/i32 fields N, f32 fields 1.0)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("dataset", parents=[common], help="generate the NL -> WGSL pairs (validated and run)")
    p.add_argument("--out", metavar="DIR", help="where train/val/test.jsonl and README.md go "
                                                "(default: dataset.path of --config, else ./wgsl-dataset)")
    p.add_argument("--config", metavar="TOML", help="take per_family, seed and the split from this "
                                                    "wgsl_generation.toml's [dataset]")
    p.add_argument("--per-family", type=int, help="distinct pairs per template family (default 10)")
    p.add_argument("--seed", type=int, help="generation seed (default 0)")
    p.add_argument("--family", action="append", metavar="NAME", help="only this family (repeatable)")
    p.add_argument("--no-check", action="store_true", help="skip validating and running the shaders (no adapter "
                                                           "needed; the README says so)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_dataset)
    from nanochat_plugins.wgsl import cli_model

    cli_model.add_parsers(sub, common)
    p = sub.add_parser("templates", help="the template families, or one family's prompt and shader")
    p.add_argument("name", nargs="?", help="a family, e.g. chromatic.mix")
    p.add_argument("--seed", type=int, default=0, help="which of the family's pairs (default 0)")
    p.set_defaults(func=cmd_templates)


def main(argv: list[str] | None = None) -> int:
    """`tiny-agent-trainer`: the original tool's name for `nanochat-cli wgsl`."""
    parser = argparse.ArgumentParser(prog=SCRIPT, description="Natural language -> WGSL compute shaders: validate "
                                     "and run shaders, generate the dataset, manage the TOML configs. The same "
                                     "commands as `nanochat-cli wgsl`.")
    setup(parser)
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    args._prog = SCRIPT
    try:
        code = args.func(args)
        return 0 if code is None else int(code)
    except EngineError as e:
        for issue in getattr(e, "issues", None) or [e]:
            _err(args, getattr(issue, "message", str(issue)))
        return 2
    except OSError as e:
        _err(args, f"{e.filename or 'file'}: {e.strerror or e}: check the path and its permissions")
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
