"""The published columns come from one table, ``schema.FIELDS``: everything else agrees with it."""

from __future__ import annotations

from dataclasses import fields

from echocaptions.schema import (
    COLUMNS,
    FIELDS,
    LABEL_NAMES,
    ORGANS,
    Caption,
    Provenance,
    Record,
    arrow_schema,
    hf_features,
    record_to_row,
    schema_markdown,
)


def _sample() -> Record:
    return Record(
        id="demo-0123456789abcdef",
        image=b"\x89PNG",
        organ="thyroid",
        dataset="demo",
        source_path="a/b.png",
        width=4,
        height=3,
        sha256="0" * 64,
        phash="f" * 16,
        frame=2,
        label="benign",
        findings={"tirads_shape": "wider_than_tall"},
        caption="a thyroid nodule",
        caption_source="template",
        captions=[Caption("template", "a thyroid nodule", Provenance(template="t.j2", cached=True))],
        caption_meta={"policy": "template", "chosen": "template"},
        license="CC BY 4.0",
    )


# The published column order and storage types: a change here changes every build's bytes.
PUBLISHED = (
    ("id", "string"), ("image", "struct<bytes: binary, path: string>"), ("organ", "int64"), ("dataset", "string"),
    ("source_path", "string"), ("frame", "int32"), ("view", "string"), ("patient_id", "string"),
    ("study_id", "string"), ("label", "int64"), ("findings", "struct"), ("findings_source", "string"),
    ("report", "string"), ("report_language", "string"), ("caption", "string"), ("caption_source", "string"),
    ("captions", "list"), ("caption_meta", "struct"), ("width", "int32"), ("height", "int32"),
    ("sha256", "string"), ("phash", "string"), ("license", "string"), ("split", "string"),
)


def test_columns_are_the_table_and_the_record() -> None:
    names = tuple(f.name for f in FIELDS)
    assert names == COLUMNS == tuple(name for name, _ in PUBLISHED)
    assert len(set(names)) == len(names)
    # every published column is a Record field, and every Record field is published
    assert set(names) == {f.name for f in fields(Record)}


def test_features_follow_the_table() -> None:
    features = hf_features()
    assert tuple(features) == COLUMNS
    assert tuple(arrow_schema().names) == COLUMNS
    for (name, storage), field in zip(PUBLISHED, arrow_schema(), strict=True):
        assert field.name == name and str(field.type).split("<")[0] == storage.split("<")[0], name
        if "<" in storage:  # spelled out in full
            assert str(field.type) == storage
    assert features["organ"].names == list(ORGANS) and features["label"].names == list(LABEL_NAMES)


def test_every_field_is_described() -> None:
    for f in FIELDS:
        assert f.type_text.strip(), f.name
        assert f.meaning.strip(), f.name
        assert "|" not in f.type_text + f.meaning, f"{f.name}: a pipe breaks the Markdown table"


def test_markdown_lists_every_column_once_in_order() -> None:
    table = schema_markdown()
    lines = table.splitlines()
    assert lines[:2] == ["| column | type | meaning |", "|---|---|---|"]
    assert table.endswith("\n")
    cells = [line.split(" | ")[0].removeprefix("| ") for line in lines[2:]]
    listed = [name.strip("`") for cell in cells for name in cell.split(", ")]
    assert tuple(listed) == COLUMNS
    assert "| `width`, `height` | int32 | pixels |" in lines


def test_record_to_row_has_the_table_keys_in_order() -> None:
    row = record_to_row(_sample())
    assert tuple(row) == COLUMNS
    assert row["organ"] == 1 and row["label"] == 1
    assert "cached" not in row["captions"][0]
    # the row is valid Arrow storage for the published schema
    import pyarrow as pa

    table = pa.Table.from_pylist([row], schema=arrow_schema())
    assert table.column_names == list(COLUMNS)
