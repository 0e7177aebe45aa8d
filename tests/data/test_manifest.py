"""data_manifest.yaml: schema, list, fetch (pooch + sha256 + atomic unpack) and check."""
from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest
import yaml

import wbdata_fixtures as fx
from workbench.core.errors import DataError, ManifestError
from workbench.data.manifest import check, fetch, list_datasets, load_manifest

REAL = ["modelnet40", "objectpi", "fg3d", "shapenet_nmr", "pascal3d", "occluded_pascal3d", "imagenet3d", "pix3d",
        "compcars", "stanford_cars", "cub"]


def test_repository_manifest_lists_every_dataset():
    m = load_manifest()
    ds = m["datasets"]
    for name in REAL:
        e = ds[name]
        assert e["kind"] == "real" and e["homepage"].startswith("http") and e["citation"] and e["layout"]
        assert e["access"] in ("download", "manual") and e["methods"]
        if e["access"] == "download":
            assert all(f["url"].startswith(("http", "ftp")) for f in e["files"])
    for preset in ("views", "multiview", "collection", "retrieval"):
        assert ds[f"synthetic_{preset}"]["access"] == "generated" and ds[f"synthetic_{preset}"]["preset"] == preset
    assert ds["cub"]["files"][0]["sha256"] == "0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081"
    methods = {m for e in ds.values() for m in e["methods"]}
    assert methods == {"compnet3d", "piro", "unicorn", "cmic", "ttp"}


def test_manifest_validation_names_the_entry(tmp_path):
    bad = yaml.safe_load(Path(load_manifest.__globals__["manifest_path"]()).read_text())
    bad["datasets"]["pix3d"]["files"][0]["sha256"] = "xyz"
    p = tmp_path / "m.yaml"
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ManifestError, match=r"datasets.pix3d.files\[0\].sha256"):
        load_manifest(p)
    del bad["datasets"]["pix3d"]["files"][0]["sha256"]
    bad["datasets"]["pix3d"]["methods"] = ["nerf"]
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ManifestError, match=r"datasets.pix3d.methods: unknown \['nerf'\]"):
        load_manifest(p)


def test_list_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("WB_DATA_DIR", str(tmp_path))
    (tmp_path / "pix3d").mkdir()
    df = list_datasets()
    assert set(REAL) <= set(df["name"]) and len(df) == len(REAL) + 4
    st = dict(zip(df["name"], df["status"]))
    assert st["pix3d"] == "present" and st["cub"] == "missing" and st["synthetic_views"] == "not generated"


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _manifest(tmp_path: Path, url: str, sha: str | None) -> Path:
    m = {"schema_version": 1, "cache_dir_env": "WB_DATA_DIR", "datasets": {
        "tinymv": {"kind": "real", "access": "download", "adapter": "objectpi", "license": "test",
                   "homepage": "http://example.org", "citation": "none", "methods": ["piro"],
                   "files": [{"path": "tinymv.zip", "url": url, "sha256": sha, "unpack": "zip", "strip": "tinymv"}],
                   "layout": ["train/train_o2c.npy", "train/1/1.jpg"]},
        "gated": {"kind": "real", "access": "manual", "adapter": "pix3d", "license": "gated", "homepage": "http://x.org",
                  "citation": "none", "methods": ["cmic"], "layout": ["pix3d.json"],
                  "instructions": "Ask the authors for access."}}}
    p = tmp_path / "manifest.yaml"
    p.write_text(yaml.safe_dump(m))
    return p


def _zip_fixture(www: Path, tmp_path: Path) -> str:
    src = tmp_path / "src" / "tinymv"
    fx.write_piro_layout(src, 8, "jpg")
    with zipfile.ZipFile(www / "tinymv.zip", "w") as zf:
        for p in sorted(src.rglob("*")):
            zf.write(p, p.relative_to(src.parent))
    return hashlib.sha256((www / "tinymv.zip").read_bytes()).hexdigest()


def test_fetch_verifies_hash_and_unpacks_atomically(tmp_path, monkeypatch, server):
    www, base = server
    monkeypatch.setenv("WB_DATA_DIR", str(tmp_path / "data"))
    sha = _zip_fixture(www, tmp_path)
    # wrong hash: clear error, nothing left behind (no dataset, no cached download, no partial dir)
    wrong = _manifest(tmp_path, f"{base}/tinymv.zip", "0" * 64)
    with pytest.raises(ManifestError, match="tinymv.zip failed sha256 verification"):
        fetch("tinymv", manifest=wrong, progress=False)
    data = tmp_path / "data"
    assert not (data / "tinymv").exists() and not list(data.rglob("tinymv.zip")) and not list(data.glob(".tinymv*"))
    # no recorded hash: refused unless explicitly allowed
    nohash = _manifest(tmp_path, f"{base}/tinymv.zip", None)
    with pytest.raises(ManifestError, match="no sha256 is recorded"):
        fetch("tinymv", manifest=nohash, progress=False)
    # right hash: downloaded, unpacked (archive folder stripped) and checked by the adapter
    good = _manifest(tmp_path, f"{base}/tinymv.zip", sha)
    root = fetch("tinymv", manifest=good, progress=False)
    assert root == data / "tinymv" and (root / "train" / "train_o2c.npy").is_file()
    rep = check("tinymv", manifest=good)
    assert rep["rows"] == 5 * 8 and rep["layout_missing"] == []
    # a second fetch is offline: the dataset is present
    (www / "tinymv.zip").unlink()
    assert fetch("tinymv", manifest=good, progress=False) == root


def test_manual_entries_and_check_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("WB_DATA_DIR", str(tmp_path))
    m = _manifest(tmp_path, "http://127.0.0.1:9/none.zip", None)
    with pytest.raises(ManifestError, match="Ask the authors for access"):
        fetch("gated", manifest=m)
    with pytest.raises(DataError, match="gated: dataset 'gated' not found|gated' not found"):
        check("gated", manifest=m)
    (tmp_path / "gated").mkdir()
    with pytest.raises(DataError, match="pix3d.json: file not found"):
        check("gated", manifest=m)
    with pytest.raises(ManifestError, match="unknown dataset 'tinym'; did you mean 'tinymv'"):
        check("tinym", manifest=m)


def test_check_generated_dataset(views_root):
    rep = check("synthetic_views", root=views_root)
    assert rep["rows"] > 0 and rep["layout_missing"] == []
