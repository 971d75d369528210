"""The audit endpoints' proofs verify with an independent RFC 9162 verifier."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


# --- an independent verifier, written from RFC 9162 §2.1.3.2 and §2.1.4.2 -------------


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def rfc_inclusion_root(index: int, size: int, leaf_hash: bytes, path: list[bytes]) -> bytes:
    assert index < size
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        assert sn != 0
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    assert sn == 0
    return r


def rfc_consistent(first: int, second: int, root1: bytes, root2: bytes, path: list[bytes]):
    assert 0 < first <= second
    if first == second:
        return not path and root1 == root2
    if first & (first - 1) == 0:
        path = [root1, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2


def _make_entries(world, count: int, start: int = 0) -> None:
    headers = world.token("admin")
    for i in range(start, start + count):
        response = world.client.post(
            "/api/v1/org/regions",
            json={
                "code": f"4301{21 + i:02d}",
                "name": f"测试区{i}",
                "level": "county",
                "parent_code": "430100",
            },
            headers=headers,
        )
        assert response.status_code == 201, response.text


def test_proofs_verify_against_the_signed_head(world) -> None:
    _make_entries(world, 5)
    auditor = world.token("auditor")
    get = lambda path, **params: world.client.get(path, params=params, headers=auditor)  # noqa: E731

    first = get("/api/v1/audit/tree-head").json()
    _make_entries(world, 3, start=5)
    head = get("/api/v1/audit/tree-head").json()
    size = head["tree_size"]
    assert size > first["tree_size"]

    public_key = Ed25519PublicKey.from_public_bytes(_b64(head["public_key"]))
    signed = _b64(head["signed_bytes"])
    public_key.verify(_b64(head["signature"]), signed)
    assert head["root_hash"].encode() in signed
    assert f"\n{size}\n".encode() in signed
    root = _b64(head["root_hash"])

    for index in range(size):
        entry = get(f"/api/v1/audit/entries/{index}").json()
        leaf = _b64(entry["leaf"])
        proof = get("/api/v1/audit/proofs/inclusion", index=index, tree_size=size).json()
        assert proof["leaf_index"] == index and proof["tree_size"] == size
        path = [_b64(p) for p in proof["proof"]]
        assert rfc_inclusion_root(index, size, _leaf(leaf), path) == root

    consistency = get(
        "/api/v1/audit/proofs/consistency", first=first["tree_size"], second=size
    ).json()
    path = [_b64(p) for p in consistency["proof"]]
    assert rfc_consistent(first["tree_size"], size, _b64(first["root_hash"]), root, path)

    earlier = get("/api/v1/audit/tree-head", tree_size=first["tree_size"]).json()
    assert earlier["root_hash"] == first["root_hash"]


def test_audit_endpoints_need_the_auditor_role(world) -> None:
    clerk = world.token("clerk_a")
    response = world.client.get("/api/v1/audit/tree-head", headers=clerk)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_bad_proof_requests(world) -> None:
    auditor = world.token("auditor")
    get = lambda path, **params: world.client.get(path, params=params, headers=auditor)  # noqa: E731
    size = get("/api/v1/audit/tree-head").json()["tree_size"]
    assert get("/api/v1/audit/proofs/inclusion", index=size, tree_size=size).status_code == 422
    too_big = get("/api/v1/audit/proofs/inclusion", index=0, tree_size=size + 10)
    assert too_big.status_code == 422
    assert too_big.json()["code"] == "bad_tree_size"
    assert get("/api/v1/audit/proofs/inclusion", index="x", tree_size=1).status_code == 422
    assert get("/api/v1/audit/entries/999999").status_code == 404
    backwards = get("/api/v1/audit/proofs/consistency", first=size, second=1)
    assert backwards.status_code == 422
    assert get("/api/v1/audit/tree-head", tree_size=-1).status_code == 422
