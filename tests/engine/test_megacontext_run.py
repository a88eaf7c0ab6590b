"""A real `cpu-tiny-mc` run (two steps, one process), its checkpoint in the Checkpoints list with MC on and a
warning with a remedy against a vanilla config, and the CLI with the plugin switched off: it still lists
checkpoints and trains a vanilla run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from engine_assets import build_assets
from plugin_helpers import forget_plugin

from engine.checkpoint import checkpoint_dir, load_meta
from engine.train import main as train_main
from nanochat_cli.cli import main as cli_main
from nanochat_cli.services.checkpoints.chat import ChatSession
from nanochat_cli.services.config.prefabs import PrefabStore
from nanochat_cli.services.config.schema import to_engine_config
from nanochat_cli.services.plugins import load_user_plugins
from nanochat_cli.services.registry import REGISTRY
from nanochat_cli.services.runs.launch import engine_flags

pytestmark = pytest.mark.slow  # real training of the cpu-tiny model shape: tens of seconds on 2 loaded cores


def overrides(assets: dict[str, str], name: str) -> dict:
    return {"model.vocab_size": 512, "training.num_iterations": 2, "training.device_batch_size": 2,
            "training.total_batch_size": 512, "telemetry.eval_tokens": 512, "telemetry.sample_every": -1,
            "hardware.device": "cpu", "hardware.nproc_per_node": 1, "data.source": "parquet",
            "data.data_dir": assets["data"], "data.tokenizer_dir": assets["tok"], "run.name": name}


def test_cpu_tiny_mc_trains_and_its_checkpoint_shows_mc(tmp_path, capsys):
    assets = build_assets(tmp_path / "assets")
    forget_plugin("megacontext")
    try:
        load_user_plugins(REGISTRY)
        resolved = PrefabStore().resolve("cpu-tiny-mc", overrides(assets, "mc"))
        cfg = to_engine_config(resolved)
        assert cfg.extensions and cfg.extensions[0]["name"] == "megacontext" and cfg.depth == 4
        assert train_main(engine_flags(cfg)) == 0
        meta = load_meta(checkpoint_dir(tmp_path / "base", "mc"), 2)
        assert meta["user_config"]["megacontext"]["enabled"] is True
        lines = (tmp_path / "base" / "runs" / "mc" / "telemetry.jsonl").read_text().splitlines()
        assert sum(1 for e in map(json.loads, lines) if e["event"] == "plugin") == 2
        capsys.readouterr()
        assert cli_main(["checkpoints", "list", "--json", "--prefab", "cpu-tiny", "--set", "model.vocab_size=512"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert row["fields"]["megacontext.enabled"] is True
        reasons = [r for r in row["compat"]["reasons"] if "MegaContext" in r["message"]]
        assert reasons[0]["level"] == "warn" and reasons[0]["remedy"] == "set megacontext.enabled=true"

        # chat over a long pasted document: the plugin's chat context reads it through the working context
        session = ChatSession.from_checkpoint(checkpoint_dir(tmp_path / "base", "mc"), mode="continue",
                                              temperature=0.0, max_tokens=4)
        assert session.info["context"] == "megacontext"
        document = Path(assets["data"]).parent.joinpath("src", "0.txt").read_text()[:8_000]
        _, stats = session.reply(document)
        assert stats.prompt_tokens > 1000 and stats.tokens >= 1
        head, lod, legend = stats.context.splitlines()
        assert head.startswith("MegaContext ") and "/256 positions" in head
        assert set(lod) <= set("█▓░·") and lod.endswith("█") and legend.startswith("█ raw tokens")
    finally:
        forget_plugin("megacontext")

    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "plugins.yaml").write_text("disabled: [megacontext]\n")
    try:
        assert cli_main(["checkpoints", "list", "--json", "--prefab", "cpu-tiny"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert "megacontext.enabled" not in row["fields"]
        assert REGISTRY.get("megacontext") is None
        vanilla = to_engine_config(PrefabStore().resolve("cpu-tiny", overrides(assets, "plain")))
        assert not vanilla.extensions
        assert train_main(engine_flags(vanilla)) == 0
        assert "megacontext" not in load_meta(checkpoint_dir(tmp_path / "base", "plain"), 2)["user_config"]
    finally:
        forget_plugin("megacontext")
