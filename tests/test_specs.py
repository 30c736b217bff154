"""Every spec in specs/ compiles, and the IR's analysis equals what Keras builds."""

import pytest
from conftest import ROOT, SPECS

from nincompile import api
from nincompile.keras_builder import count_params

# Figures the seeds publish (Keras model.summary() output in the seed documents).
PUBLISHED = {
    "nin": (966_986, 966_986, 0),
    "nin_bamd": (972_658, 969_822, 2_836),
    "nin_badm": (972_658, 969_822, 2_836),
    "nin_dbam": (972_658, 969_822, 2_836),
    "nin_bdam": (972_658, 969_822, 2_836),
    "baseline": (198_506, 198_494, 12),
    "lenet5": (62_006, 62_006, 0),
    "alexnet8": (9_639_178, 9_638_474, 704),
    "googlenet_fashion": (294_218, 293_226, 992),
}
REQUIRED = set(PUBLISHED) | {"vgg16", "inception10", "resnet18", "nin_d2l"}


def test_every_seed_system_has_a_spec():
    assert REQUIRED <= {p.stem for p in SPECS}


# Every model of every spec: a spec with variants: gives one per combination.
MODELS = [(path, i, c.name) for path in SPECS for i, c in enumerate(api.compile_all(path))]


@pytest.fixture(scope="module", params=MODELS, ids=lambda m: m[2])
def built(request):
    path, index, _ = request.param
    compiled = api.compile_all(path)[index]
    from nincompile.keras_builder import build_model

    return compiled, build_model(compiled.graph)


def test_spec_file_name_is_model_name(built):
    compiled, _ = built
    stem = compiled.source.file.rsplit("/", 1)[-1].removesuffix(".yaml")
    if compiled.spec.name != stem:  # a variant: <spec name>_<values>
        assert compiled.name.startswith(stem + "_")
    else:
        assert compiled.source.file.endswith(f"{compiled.name}.yaml")


def test_ir_counts_equal_keras(built):
    compiled, model = built
    assert count_params(model) == compiled.counts()
    assert model.count_params() == compiled.counts()["total"]


def test_expect_is_filled_and_met(built):
    compiled, model = built
    expect = compiled.spec.expect
    assert expect is not None and None not in (
        expect.params,
        expect.trainable,
        expect.non_trainable,
    )
    assert compiled.expect_mismatches(count_params(model)) == []


def test_published_figures(built):
    compiled, model = built
    if compiled.name not in PUBLISHED:
        pytest.skip("the seeds publish no figure for this model")
    keras_counts = count_params(model)
    total, trainable, non_trainable = PUBLISHED[compiled.name]
    assert keras_counts == {
        "total": total,
        "trainable": trainable,
        "non_trainable": non_trainable,
    }


def test_layers_shapes_and_per_layer_params_equal_keras(built):
    compiled, model = built
    ir = {layer.name: layer for layer in compiled.graph.layers()}
    assert {layer.name for layer in model.layers} == set(ir)
    for layer in model.layers:
        info = ir[layer.name]
        assert tuple(layer.output.shape[1:]) == info.output_shape, layer.name
        assert layer.count_params() == info.params.total, layer.name
        trainable = sum(int(_size(w)) for w in layer.trainable_weights)
        assert trainable == info.params.trainable, layer.name


def _size(w):
    n = 1
    for d in w.shape:
        n *= int(d)
    return n


def test_nin_bn_variants_differ_only_in_order():
    from nincompile.spec import load_spec

    dumps = {}
    for order in ("bamd", "badm", "dbam", "bdam"):
        spec = load_spec(ROOT / "specs" / f"nin_{order}.yaml").spec
        assert spec.defaults.order == order.replace("m", "p")
        dump = spec.model_dump(exclude={"name", "description"})
        dump["defaults"].pop("order")
        dumps[order] = dump
    first = dumps.pop("bamd")
    assert all(d == first for d in dumps.values())


def test_build_refuses_a_model_whose_counts_differ_from_the_ir(monkeypatch):
    from nincompile.errors import KerasMismatch
    from nincompile.ir import nodes

    monkeypatch.setattr(nodes.BatchNorm, "params", lambda self, shapes: nodes.Params(1, 1))
    compiled = api.compile_spec(ROOT / "specs" / "baseline.yaml")
    with pytest.raises(KerasMismatch, match="please report this bug"):
        api.build(compiled)
