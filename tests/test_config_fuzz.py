"""Every YAML document and every --opts override gives a valid config or a ConfigError naming where — never another
exception (property-based, hypothesis); YAML 1.1's ``1e-3``; command-line overrides checked like the file."""
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import main
from processors.config import SCHEMA, Config, ConfigError, Field, load_config

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 6, 10 ** 6), st.floats(), TEXT,
                    st.sampled_from(["1e-3", "5E-4", "-2", ".5", "auto", "", "gt", "imagenet", "nan", "1e999",
                                     "dconv", "rle", "resnet18", "a/b", "\x00"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) |
                      st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)
KINDS = {"int": st.integers(-5, 300), "float": st.floats(-10, 300) | st.sampled_from(["1e-3", "2.5e+2"]),
         "bool": st.booleans(), "str": TEXT, "path": TEXT, "size": st.lists(st.integers(-4, 512), max_size=3),
         "ints": st.lists(st.integers(-3, 300), max_size=4), "floats": st.lists(st.floats(-1, 300), max_size=4),
         "strs": st.lists(TEXT, max_size=3), "pairs": st.lists(st.lists(st.integers(-1, 20), max_size=3), max_size=3)}


def leaf(field):
    """Mostly plausible values of the field's kind and choices, sometimes anything at all."""
    options = [st.just(field.default), KINDS[field.kind], VALUES]
    if field.choices:
        options.append(st.sampled_from(field.choices))
    return st.one_of(options)


def section(spec):
    known = {k: section(v) if isinstance(v, dict) else leaf(v) for k, v in spec.items()}
    return st.fixed_dictionaries({}, optional=known) | st.builds(
        lambda a, b: {**a, **b}, st.fixed_dictionaries({}, optional=known), st.dictionaries(TEXT, VALUES, max_size=2))


def key_paths(spec, prefix=""):
    for k, v in spec.items():
        path = f"{prefix}{k}"
        yield from key_paths(v, path + ".") if isinstance(v, dict) else [path]


DOCUMENTS = st.one_of(section(SCHEMA).map(yaml.safe_dump), VALUES.map(yaml.safe_dump), TEXT,
                      st.sampled_from(["data: [1, 2", "model: {type: rle", "optim:\n  lr: 1e-3\n", "- a\n- b\n",
                                       "data:\n\tbatch_size: 4\n", "{a: 1, a: 2}"]))
OVERRIDES = st.lists(st.one_of(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(sorted(key_paths(SCHEMA))),
                                         st.one_of(TEXT, st.sampled_from(["16", "5e-4", "true", "[256, 192]", "{}"]))),
                               TEXT), max_size=3)
FILE_PROBLEMS = ("not valid YAML", "expected a mapping of keys at the top level", "--opts '")


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                    HealthCheck.function_scoped_fixture])
@given(text=DOCUMENTS, overrides=OVERRIDES)
def test_any_document_gives_a_config_or_a_config_error_naming_where(tmp_path, text, overrides):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        cfg = load_config(str(path), overrides=overrides)
    except ConfigError as e:
        message = str(e)
        assert message.startswith(str(path)), message
        assert "key '" in message or any(p in message for p in FILE_PROBLEMS), message
    else:
        assert isinstance(cfg, Config) and cfg.data.batch_size > 0


def test_exponent_numbers_and_overrides(tmp_path, capsys):
    path = tmp_path / "x.yaml"
    path.write_text("data:\n  use_synthetic: true\noptim:\n  lr: 1e-3\n  weight_decay: 5E-4\n  warmup_ratio: '0.01'\n")
    cfg = load_config(str(path))
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.warmup_ratio) == (0.001, 0.0005, 0.01)
    cfg = load_config(str(path), overrides=["data.batch_size=16", "optim.lr=5e-4", "data.input_size=[128, 96]",
                                            "data.heatmap_size=[32, 24]", "model.name=resnet18"])
    assert (cfg.data.batch_size, cfg.optim.lr, cfg.data.input_size) == (16, 0.0005, [128, 96])
    for opts, message in ((["optim.lr=fast"], "--opts, key 'optim.lr': expected a number, got str 'fast'"),
                          (["optim.lrr=1"], "--opts, key 'optim.lrr': unknown key; did you mean 'lr'?"),
                          (["optim.lr"], "--opts 'optim.lr': expected key.path=value"),
                          (["optim.lr.x=1"], "--opts 'optim.lr.x=1': key 'optim.lr' is not a section")):
        try:
            load_config(str(path), overrides=opts)
        except ConfigError as e:
            assert message in str(e), str(e)
        else:
            raise AssertionError(f"{opts} accepted")
    assert main.main(["--cfg", str(path), "--cfg-options", "optim.epochs=zero"]) == 2
    assert "--opts, key 'optim.epochs': expected an integer" in capsys.readouterr().err
    assert isinstance(SCHEMA["optim"]["lr"], Field)
