import pytest

from shufflelib import reference
from shufflelib.tables import Table

REQUIRED = [
    "shufflenet_v2.table1",
    "shufflenet_v2.table2",
    "shufflenet_v2.table3",
    "shufflenet_v2.table4",
    "shufflenet_v2.table5",
    "shufflenet_v2.table8",
    "shufflenet_v1.table1",
    "shufflenet_v1.table2",
    "shufflenet_v1.table3",
    "mobilenet_v2.table2",
    "mobilenet_v2.table4",
    "efficientnet_v2.table4",
    "repvgg.table4",
    "mobileone.table9",
    "torchvision.metadata",
]


def row(name: str, key: str, value: object) -> dict:
    """The one row of table ``name`` whose column ``key`` equals ``value``."""
    rows = [r for r in reference.table(name) if r[key] == value]
    assert len(rows) == 1, (name, key, value)
    return rows[0]


def test_names_lists_every_required_table():
    names = reference.names()
    assert set(REQUIRED) <= set(names)
    assert len(names) == len(set(names))
    assert all(isinstance(n, str) for n in names)


@pytest.mark.parametrize("name", reference.names())
def test_every_table_builds_with_its_source(name):
    t = reference.table(name)
    assert isinstance(t, Table)
    assert len(t) >= 3
    # The title is the source: a paper with its arXiv id, or torchvision with its version.
    assert "arXiv:" in t.title or "torchvision 0.29.1" in t.title
    assert "Table" in t.title or "metadata" in t.title
    cols = t.columns
    assert all(list(r) == cols for r in t), "every row has every column, in the same order"
    for r in t:
        for v in r.values():
            assert v is None or isinstance(v, (int, float, str, tuple)), (name, v)
            assert v != "" and v != "-", "gaps are None, not placeholder strings"
    assert str(t).startswith(t.title)


@pytest.mark.parametrize("name", reference.names())
def test_table_returns_a_fresh_copy(name):
    t = reference.table(name)
    t[0]["tampered"] = True
    t.append({"x": 1})
    again = reference.table(name)
    assert "tampered" not in again[0]
    assert len(again) == len(t) - 1


def test_shufflenet_v2_sources_name_the_paper_and_platforms():
    for n in ("table1", "table2", "table3", "table4"):
        title = reference.table(f"shufflenet_v2.{n}").title
        assert title.startswith("ShuffleNet V2 (Ma et al., ECCV 2018, arXiv:1807.11164)")
        assert f"Table {n[-1]}" in title
        assert "GTX 1080Ti batches/s" in title and "Snapdragon 810 images/s" in title
    assert "arXiv:1707.01083" in reference.table("shufflenet_v1.table1").title
    assert "arXiv:1801.04381" in reference.table("mobilenet_v2.table2").title
    assert "arXiv:2104.00298" in reference.table("efficientnet_v2.table4").title


def test_guideline_tables_spot_values():
    # Table 1 (G1)
    r = row("shufflenet_v2.table1", "c1:c2", "1:1")
    assert (r["GPU x1"], r["GPU x2"], r["GPU x4"]) == (1480, 723, 232)
    assert (r["ARM x1"], r["ARM x2"], r["ARM x4"]) == (76.2, 21.7, 5.3)
    r = row("shufflenet_v2.table1", "c1:c2", "1:12")
    assert (r["GPU c1"], r["GPU c2"], r["ARM c1"], r["ARM c2"]) == (36, 432, 9, 108)
    assert (r["GPU x1"], r["ARM x4"]) == (748, 4.4)
    # Table 2 (G2)
    t2 = reference.table("shufflenet_v2.table2")
    assert t2.column("g") == [1, 2, 4, 8]
    assert t2.column("GPU c") == [128, 180, 256, 360]
    assert t2.column("ARM c") == [64, 90, 128, 180]
    assert t2.column("GPU x1") == [2451, 1725, 1026, 634]
    assert t2.column("ARM x1") == [40.0, 35.0, 32.9, 27.8]
    # Table 3 (G3)
    r = row("shufflenet_v2.table3", "structure", "4-fragment-parallel")
    assert (r["GPU c=128"], r["GPU c=512"], r["ARM c=64"], r["ARM c=256"]) == (691, 292, 35.0, 2.1)
    # Table 4 (G4)
    t4 = reference.table("shufflenet_v2.table4")
    assert [(r["ReLU"], r["shortcut"]) for r in t4] == [
        ("yes", "yes"),
        ("yes", "no"),
        ("no", "yes"),
        ("no", "no"),
    ]
    assert t4[3]["ARM c=32"] == 66.3
    assert t4[0]["GPU c=32"] == 2427 and t4[3]["GPU c=128"] == 1782


def test_architecture_and_accuracy_spot_values():
    t5 = reference.table("shufflenet_v2.table5")
    assert row("shufflenet_v2.table5", "layer", "Stage3")["1x"] == 232
    assert row("shufflenet_v2.table5", "layer", "Conv5")["2x"] == 2048
    assert row("shufflenet_v2.table5", "layer", "Stage2")["repeat"] == (1, 3)
    flops = row("shufflenet_v2.table5", "layer", "FLOPs (M)")
    assert [flops[w] for w in ("0.5x", "1x", "1.5x", "2x")] == [41, 146, 299, 591]
    assert len(t5) == 11
    r = row("shufflenet_v2.table8", "model", "ShuffleNet v2 2x (ours)")
    assert (r["MFLOPs"], r["top-1 err"], r["GPU"], r["ARM"]) == (
        591,
        25.1,
        217,
        6.7,
    )
    condense = row("shufflenet_v2.table8", "model", "CondenseNet (G=C=8)")
    assert condense["GPU"] is None and condense["ARM"] is None
    assert row("shufflenet_v2.table8", "model", "0.4 MobileNet v2 (our impl.)")["input"] == 160
    assert "Ma et al. (2018), Table 8" in reference.table("shufflenet_v2.table8").note
    assert len(reference.table("shufflenet_v2.table8")) == 39

    v1 = reference.table("shufflenet_v1.table1")
    stage4 = row("shufflenet_v1.table1", "layer", "Stage4")
    assert stage4["g=1"] == 576  # not the 567 typo of several re-implementations
    assert [stage4[f"g={g}"] for g in (1, 2, 3, 4, 8)] == [576, 800, 960, 1088, 1536]
    assert v1[-1]["g=3"] == 137
    assert row("shufflenet_v1.table2", "model", "ShuffleNet 0.5x")["g=4"] == 41.6
    assert row("shufflenet_v1.table3", "model", "ShuffleNet 1x (g=8)")["delta err"] == 5.2

    mn = reference.table("mobilenet_v2.table2")
    assert [(r["t"], r["c"], r["n"], r["s"]) for r in mn[1:8]] == [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    r = row("mobilenet_v2.table4", "network", "MobileNetV2")
    assert (r["top-1"], r["params"], r["MAdds"], r["CPU"]) == (72.0, 3.4, 300, 75)

    en = reference.table("efficientnet_v2.table4")
    assert [r["channels"] for r in en] == [24, 24, 48, 64, 128, 160, 256, 1280]
    assert [r["layers"] for r in en] == [1, 2, 4, 4, 6, 9, 15, 1]
    assert en[4]["SE"] == 0.25 and en[1]["SE"] is None


def test_torchvision_metadata():
    tv = reference.table("torchvision.metadata")
    assert {"params", "GFLOPS", "acc@1"} <= set(tv.columns)
    r = row("torchvision.metadata", "weights", "ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1")
    assert (r["model"], r["params"], r["GFLOPS"], r["acc@1"]) == (
        "shufflenet_v2_x1_0",
        2278604,
        0.145,
        69.362,
    )
    assert tv.column("params")[-1] == 118515272
    assert row("torchvision.metadata", "weights", "EfficientNet_V2_S_Weights.IMAGENET1K_V1")[
        "acc@1"
    ] == pytest.approx(84.228)
    assert all(isinstance(p, int) for p in tv.column("params"))


def test_reparameterised_networks_spot_values():
    # Chapter 13 quotes these beside the zoo's repvgg_a0 and mobileone_s0 (deployed).
    a0 = row("repvgg.table4", "model", "RepVGG-A0")
    assert (a0["top-1"], a0["params"], a0["FLOPs"]) == (72.41, 8.30, 1.4)
    assert reference.table("repvgg.table4").title.startswith(
        "RepVGG (Ding et al., CVPR 2021, arXiv:2101.03697), Table 4"
    )
    s0 = row("mobileone.table9", "model", "MobileOne-S0")
    assert (s0["params"], s0["FLOPs"], s0["top-1"], s0["latency"]) == (
        2.1,
        275,
        71.4,
        0.79,
    )
    t9 = reference.table("mobileone.table9")
    assert t9.title.startswith("MobileOne (Vasu et al., CVPR 2023, arXiv:2206.04040), Table 9")
    assert t9.column("model") == [f"MobileOne-S{i}" for i in range(5)]
    assert t9.column("top-1") == sorted(t9.column("top-1"))
    assert t9.header("FLOPs") == "FLOPs (M)" and t9.header("latency") == "latency (ms)"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="shufflenet_v2.table9") as e:
        reference.table("shufflenet_v2.table9")
    for name in reference.names():
        assert name in str(e.value)
    assert "name must be one of" in str(e.value)
    with pytest.raises(TypeError, match="name must be a non-empty str, got 1"):
        reference.table(1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        reference.table("")


def test_progressive_schedule_interpolates_table6_linearly():
    from shufflelib.reference import progressive_schedule, table

    six = {r["setting"]: r for r in table("efficientnet_v2.table6")}
    assert six["image size"]["S max"] == 300 and six["mixup alpha"]["L max"] == 0.4
    s = progressive_schedule("S", stages=4)
    assert s.column("stage") == [1, 2, 3, 4]
    assert s.column("image size") == [128, 185, 243, 300]  # 128 + 172 * t, rounded
    assert s.column("dropout") == [0.1, 0.167, 0.233, 0.3]
    m = progressive_schedule("M", stages=2)
    assert m.column("RandAugment") == [5, 20] and m.column("mixup alpha") == [0, 0.2]
    with pytest.raises(ValueError, match="size must be one of 'S', 'M', 'L'; got 'XL'"):
        progressive_schedule("XL")
    with pytest.raises(TypeError, match="size must be a non-empty str, got 1"):
        progressive_schedule(1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stages must be an int >= 2, got 1"):
        progressive_schedule("S", stages=1)
    with pytest.raises(TypeError, match="stages must be an int >= 2, got '4'"):
        progressive_schedule("S", stages="4")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="stages must be an int >= 2, got True"):
        progressive_schedule("S", stages=True)


def test_published_columns_declare_their_units():
    t8 = reference.table("shufflenet_v2.table8")
    assert t8.units == {"top-1 err": "%", "GPU": "batches/s", "ARM": "images/s"}
    assert [t8.header(c) for c in ("MFLOPs", "top-1 err", "GPU", "ARM")] == [
        "MFLOPs",
        "top-1 err (%)",
        "GPU (batches/s)",
        "ARM (images/s)",
    ]
    assert reference.table("shufflenet_v1.table8").header("480x640") == "480x640 (ms)"
    assert reference.table("shufflenet_v1.table3").unit("delta err") == "%"
    assert reference.table("mobilenet_v2.table4").unit("params") == "M"
    assert reference.table("torchvision.metadata").header("file size") == "file size (MB)"
    for name in reference.names():  # no column name carries a unit: the units say it
        assert not any(c.endswith(")") for c in reference.table(name).columns), name
