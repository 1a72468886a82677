"""Rule params passed as JSON (backtrack.smk.as_json / json_param): what the script reads, what
Snakemake records for its params rerun trigger, and what the report shows."""

from __future__ import annotations

import json
import pickle

from backtrack.smk import JsonParam, as_json, json_param

VALUE = {"b": [1, "x y"], "a": None, "c": {"d": 0.5}}


def test_the_recorded_value_is_the_plain_sorted_json():
    p = as_json(VALUE)
    plain = json.dumps(VALUE, sort_keys=True)
    # Snakemake records repr(value) of each param: unchanged, so nothing reruns.
    assert repr(p) == repr(plain) and p == plain and json.loads(p) == VALUE
    assert json_param(VALUE)({"model": "m"}) == plain  # the params function, any wildcards
    copy = pickle.loads(pickle.dumps(p))  # the script's copy of snakemake.params
    assert type(copy) is str and copy == plain


def test_the_report_shows_yaml_flow_text_without_double_quotes():
    assert f"{as_json(VALUE)}" == "{a: null, b: [1, x y], c: {d: 0.5}}"
    assert f"{as_json('plain')}" == "plain" and f"{as_json(3)}" == "3"
    assert isinstance(json_param(VALUE)(None), JsonParam)
