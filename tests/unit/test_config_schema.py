"""The categorised run-config schema: engine fields reused as they are, launcher fields, validation messages."""

import pytest
from pydantic import BaseModel, ConfigDict, Field

from engine.config import HOT_PATCHABLE, TrainConfig
from nanochat_cli.errors import AppError
from nanochat_cli.services.config import schema
from nanochat_cli.services.config.schema import (
    CATEGORY_ORDER,
    ConfigError,
    RunConfig,
    check,
    defaults,
    field_specs,
    parse_value,
    resolve_key,
    spec_for,
    specs_by_category,
    to_engine_config,
    validate_overrides,
)
from nanochat_cli.services.registry import REGISTRY


def messages(issues):
    return [i.message for i in issues]


def test_categories_in_order():
    assert CATEGORY_ORDER[:7] == ["model", "training", "data", "hardware", "telemetry", "auth", "run"]
    assert list(specs_by_category())[:7] == CATEGORY_ORDER[:7]


def test_every_engine_field_has_exactly_one_home():
    mapped = [s.engine_name for s in field_specs() if s.engine_name]
    assert len(mapped) == len(set(mapped))
    assert set(mapped) | set(schema.ENGINE_DERIVED) == set(TrainConfig.model_fields)


def test_engine_fields_keep_help_bounds_defaults_and_hot_flag():
    for s in field_specs():
        if not s.engine_name:
            continue
        info = TrainConfig.model_fields[s.engine_name]
        assert s.help == info.description
        assert s.default == info.default
        assert s.hot == (s.engine_name in HOT_PATCHABLE)
    depth = spec_for("model.depth")
    assert (depth.type_name, depth.minimum, depth.maximum) == ("int", 1, 128)
    lr_scale = spec_for("training.lr_scale")
    assert lr_scale.hot and lr_scale.min_exclusive and lr_scale.maximum == 10
    assert spec_for("telemetry.wandb").choices == ["disabled", "offline", "online"]
    assert spec_for("model.n_kv_head").nullable
    assert spec_for("run.name").engine_name == "run"


def test_launcher_fields():
    dev = spec_for("hardware.device")
    assert dev.type_name == "choice" and dev.choices == ["auto", "cpu", "cuda"] and dev.engine_name is None
    assert spec_for("hardware.nproc_per_node").minimum == 1
    for key in ("auth.wandb_key_set", "auth.hf_token_set"):
        s = spec_for(key)
        assert s.readonly and s.type_name == "bool" and not s.secret


def test_bare_and_dotted_keys():
    assert resolve_key("depth") == "model.depth"
    assert resolve_key("model.depth") == "model.depth"
    with pytest.raises(ConfigError, match="dpeth: unknown field: did you mean"):
        resolve_key("dpeth")


def test_parse_value_types_and_ranges():
    assert parse_value(spec_for("depth"), " 6 ") == 6
    assert parse_value(spec_for("total_batch_size"), "524_288") == 524288
    assert parse_value(spec_for("matrix_lr"), "2e-2") == 0.02
    assert parse_value(spec_for("compile"), "yes") is True
    assert parse_value(spec_for("n_kv_head"), "none") is None
    assert parse_value(spec_for("wandb"), "offline") == "offline"
    with pytest.raises(ValueError, match=r"model.depth: 'six' is not a whole number: use an integer between 1 and 128"):
        parse_value(spec_for("depth"), "six")
    with pytest.raises(ValueError, match=r"model.depth: 0 is out of range: use a value between 1 and 128"):
        parse_value(spec_for("depth"), "0")
    with pytest.raises(ValueError, match=r"training.lr_scale: 0.0 is out of range: use a value greater than 0"):
        parse_value(spec_for("lr_scale"), "0")
    with pytest.raises(ValueError, match="use one of disabled, offline, online"):
        parse_value(spec_for("wandb"), "cloud")
    with pytest.raises(ValueError, match="not true or false"):
        parse_value(spec_for("compile"), "maybe")


def test_overrides_name_field_value_and_allowed_range():
    base = check({})[0]
    issues = validate_overrides(base, {"depth": 200, "window_pattern": "SSX", "auth.wandb_key_set": True,
                                       "nope": 1})
    by_field = {i.field: i.message for i in issues}
    assert by_field["model.depth"] == "model.depth: 200 is out of range: use a value between 1 and 128"
    assert "'SSX'" in by_field["model.window_pattern"] and "only S" in by_field["model.window_pattern"]
    assert "read-only" in by_field["auth.wandb_key_set"]
    assert by_field["nope"].startswith("nope: unknown field")
    assert validate_overrides(base, {"depth": 6}) == []


def test_yaml_booleans_are_not_numbers():
    issues = validate_overrides(check({})[0], {"depth": True})
    assert messages(issues) == ["model.depth: True is not a number: use a number between 1 and 128"]


def test_cross_field_total_batch_divisibility_uses_world_size():
    base = check({"training.device_batch_size": 8, "model.max_seq_len": 256, "hardware.nproc_per_node": 2,
                  "training.total_batch_size": 4096})[0]
    issues = validate_overrides(base, {"training.total_batch_size": 5000})
    assert messages(issues) == [
        "training.total_batch_size: 5000 is not a multiple of device_batch_size × max_seq_len × world size = "
        "8 × 256 × 2 = 4096: use a multiple of 4096, e.g. 4096 or 8192"]
    assert validate_overrides(base, {"hardware.nnodes": 2, "hardware.rdzv_endpoint": "10.0.0.1:29500",
                                     "training.total_batch_size": 8192}) == []


def test_cross_field_heads_and_windows():
    base = check({})[0]  # depth 20 * 64 = 1280 = 10 heads of 128
    issues = validate_overrides(base, {"n_kv_head": 3})
    assert messages(issues) == ["model.n_kv_head: 3 does not divide n_head = 10 (model_dim 1280 / head_dim 128): "
                                "use one of 1, 2, 5, 10, or none"]
    assert validate_overrides(base, {"n_kv_head": 5}) == []
    odd = validate_overrides(base, {"head_dim": 9})
    assert any(i.field == "model.head_dim" and "odd" in i.message for i in odd)
    assert validate_overrides(base, {"window_pattern": "SL"}) == []


def test_cross_field_launcher_rules():
    base = check({})[0]
    fields = {i.field for i in validate_overrides(base, {"data.source": "parquet"})}
    assert fields == {"data.data_dir"}
    assert validate_overrides(base, {"data.source": "parquet", "data.data_dir": "/data/shards"}) == []
    assert {i.field for i in validate_overrides(base, {"data.data_dir": "/x"})} == {"data.source"}
    assert {i.field for i in validate_overrides(base, {"fp8": True, "device": "cpu"})} == {"training.fp8"}
    assert {i.field for i in validate_overrides(base, {"nnodes": 2, "training.total_batch_size": 2 ** 20})} == {
        "hardware.rdzv_endpoint"}
    assert {i.field for i in validate_overrides(base, {"node_rank": 1})} == {"hardware.node_rank"}
    assert {i.field for i in validate_overrides(base, {"resume": True, "init_from": "/ckpt/model_000100.pt"})} == {
        "run.init_from"}


def test_to_engine_config_flattens_and_maps_names():
    values, issues = check({"model.depth": 6, "run.name": "exp1", "hardware.device": "cpu",
                            "hardware.nproc_per_node": 4, "training.total_batch_size": 2 ** 20})
    assert issues == []
    cfg = to_engine_config(values)
    assert (cfg.depth, cfg.run, cfg.device_type, cfg.total_batch_size) == (6, "exp1", "cpu", 2 ** 20)
    assert to_engine_config(check({})[0]).device_type == ""  # auto -> engine autodetect


def test_run_config_round_trip_and_rules():
    values = check({"model.depth": 6})[0]
    rc = RunConfig.from_flat(values)
    assert rc.model.depth == 6 and rc.flat() == values
    with pytest.raises(ValueError, match="total_batch_size"):
        RunConfig.from_flat({**values, "training.total_batch_size": 1000})


class _Sweep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trials: int = Field(4, description="number of sweep trials", ge=1, le=64, json_schema_extra={"hot": True})
    depth: int = Field(2, description="clashes with model.depth on purpose")


@pytest.fixture
def sweep_plugin():
    REGISTRY.register_category("sweep", _Sweep, "hyper-parameter sweep")
    yield
    REGISTRY.unregister_category("sweep")


def test_plugin_category_appears_everywhere(sweep_plugin):
    assert CATEGORY_ORDER[-1] == "sweep"
    spec = spec_for("sweep.trials")
    assert (spec.category, spec.type_name, spec.default, spec.maximum, spec.hot) == ("sweep", "int", 4, 64, True)
    assert spec in field_specs() and specs_by_category()["sweep"][0] == spec
    assert defaults()["sweep.trials"] == 4
    assert resolve_key("trials") == "sweep.trials"
    with pytest.raises(ConfigError, match="depth: ambiguous: use one of model.depth, sweep.depth"):
        resolve_key("depth")
    assert messages(validate_overrides(check({})[0], {"sweep.trials": 100})) == [
        "sweep.trials: 100 is out of range: use a value between 1 and 64"]
    assert schema.run_config_model().model_validate({"sweep": {"trials": 8}}).sweep.trials == 8
    assert "trials" not in to_engine_config(check({})[0]).model_dump()


def test_plugin_registration_rules():
    class Loose(BaseModel):
        x: int = 1

    with pytest.raises(AppError, match="extra='forbid'"):
        REGISTRY.register_category("loose", Loose)
    with pytest.raises(AppError, match="already registered"):
        REGISTRY.register_category("model", _Sweep)
    with pytest.raises(AppError, match="core categories cannot be removed"):
        REGISTRY.unregister_category("model")
    assert "sweep" not in CATEGORY_ORDER  # the fixture above cleaned up
