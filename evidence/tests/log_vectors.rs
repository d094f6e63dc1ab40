//! Known-answer tests of the evidence log's byte formats: RFC 6962 hashing,
//! RFC 9162 proofs (transparency-dev/merkle vectors), C2SP signed notes and
//! checkpoints, and the Go checksum database's note vectors (see
//! tests/vectors/README.md).

use annexa_evidence::encoding::{b64_decode, hex_decode};
use annexa_evidence::keys::SigningKey;
use annexa_evidence::merkle::{
    Hash, MemoryTree, consistency_proof, inclusion_proof, leaf_hash, node_hash, verify_consistency,
    verify_inclusion,
};
use annexa_evidence::note::{Checkpoint, Note, NoteError, Verifier, sign};

fn vectors(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn h(v: &serde_json::Value) -> Hash {
    hex_decode(v.as_str().unwrap()).unwrap().try_into().unwrap()
}

fn b(v: &serde_json::Value) -> Vec<u8> {
    b64_decode(v.as_str().unwrap()).unwrap()
}

fn hashes_b64(v: &serde_json::Value) -> Option<Vec<Hash>> {
    match v.as_array() {
        None => Some(Vec::new()),
        Some(a) => a.iter().map(|x| b(x).try_into().ok()).collect(),
    }
}

/// Some edge-case vectors use placeholder roots that are not 32 bytes
/// ("don't care"): map those to a 32-byte stand-in that keeps equal roots
/// equal and different ones different.
fn root(v: &serde_json::Value) -> Hash {
    let raw = b(v);
    raw.clone().try_into().unwrap_or_else(|_| {
        ring::digest::digest(&ring::digest::SHA256, &raw)
            .as_ref()
            .try_into()
            .unwrap()
    })
}

fn reference_tree() -> (serde_json::Value, MemoryTree) {
    let v = vectors("rfc6962_reference_tree.json");
    let mut t = MemoryTree::new();
    for input in v["leaf_inputs_hex"].as_array().unwrap() {
        t.push(leaf_hash(&hex_decode(input.as_str().unwrap()).unwrap()));
    }
    (v, t)
}

#[test]
fn rfc6962_hashing_and_every_root_of_the_reference_tree() {
    let (v, t) = reference_tree();
    for kat in v["hasher_kats"].as_array().unwrap() {
        let want = h(&kat["want"]);
        if let Some(leaf) = kat.get("leaf_hex") {
            assert_eq!(
                leaf_hash(&hex_decode(leaf.as_str().unwrap()).unwrap()),
                want
            );
        } else if let Some(left) = kat.get("left_hex") {
            // Node hashing over raw (non-32-byte) children, as the vector has it.
            let (l, r) = (
                hex_decode(left.as_str().unwrap()).unwrap(),
                hex_decode(kat["right_hex"].as_str().unwrap()).unwrap(),
            );
            let mut pre = vec![1u8];
            pre.extend_from_slice(&l);
            pre.extend_from_slice(&r);
            let got = ring::digest::digest(&ring::digest::SHA256, &pre);
            assert_eq!(got.as_ref(), &want[..]);
        } else {
            assert_eq!(MemoryTree::new().root(), want);
        }
    }
    for (level, nodes) in v["node_hashes_by_level"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for (i, n) in nodes.as_array().unwrap().iter().enumerate() {
            assert_eq!(t.level(level as u32)[i], h(n), "level {level} node {i}");
        }
    }
    for (size, root) in v["root_hashes_by_tree_size"].as_object().unwrap() {
        let size: u64 = size.parse().unwrap();
        assert_eq!(t.root_at(size).unwrap(), h(root), "size {size}");
    }
    // node_hash itself on 32-byte children.
    assert_eq!(node_hash(&t.level(0)[0], &t.level(0)[1]), t.level(1)[0]);
}

#[test]
fn our_proofs_equal_the_published_ct_proofs() {
    let (v, t) = reference_tree();
    for case in v["inclusion_proofs"].as_array().unwrap() {
        let size = case["tree_size"].as_u64().unwrap();
        let Some(index) = case["leaf_index_0based"].as_u64() else {
            continue;
        };
        let want: Vec<Hash> = case["proof"].as_array().unwrap().iter().map(h).collect();
        assert_eq!(
            inclusion_proof(&t, index, size).unwrap(),
            want,
            "{index}/{size}"
        );
        verify_inclusion(
            &t.level(0)[index as usize],
            index,
            size,
            &want,
            &t.root_at(size).unwrap(),
        )
        .unwrap();
    }
    for case in v["consistency_proofs"].as_array().unwrap() {
        let (m, n) = (
            case["size1"].as_u64().unwrap(),
            case["size2"].as_u64().unwrap(),
        );
        let want: Vec<Hash> = case["proof"].as_array().unwrap().iter().map(h).collect();
        assert_eq!(consistency_proof(&t, m, n).unwrap(), want, "{m}->{n}");
        verify_consistency(m, n, &want, &t.root_at(m).unwrap(), &t.root_at(n).unwrap()).unwrap();
    }
}

#[test]
fn transparency_dev_proof_vectors_accept_and_reject_as_published() {
    let v = vectors("merkle_proofs.json");
    let mut checked = 0;
    for case in v["inclusion"].as_array().unwrap() {
        let want_err = case["wantErr"].as_bool().unwrap();
        let path = case["path"].as_str().unwrap();
        let (Some(proof), Ok(leaf), Ok(root)) = (
            hashes_b64(&case["proof"]),
            <[u8; 32]>::try_from(b(&case["leafHash"])),
            <[u8; 32]>::try_from(b(&case["root"])),
        ) else {
            assert!(want_err, "{path}: malformed but expected to verify");
            continue;
        };
        let got = verify_inclusion(
            &leaf,
            case["leafIdx"].as_u64().unwrap(),
            case["treeSize"].as_u64().unwrap(),
            &proof,
            &root,
        );
        assert_eq!(got.is_err(), want_err, "{path}: {got:?}");
        checked += 1;
    }
    for case in v["consistency"].as_array().unwrap() {
        let want_err = case["wantErr"].as_bool().unwrap();
        let path = case["path"].as_str().unwrap();
        let (Some(proof), r1, r2) = (
            hashes_b64(&case["proof"]),
            root(&case["root1"]),
            root(&case["root2"]),
        ) else {
            assert!(want_err, "{path}: malformed but expected to verify");
            continue;
        };
        let got = verify_consistency(
            case["size1"].as_u64().unwrap(),
            case["size2"].as_u64().unwrap(),
            &proof,
            &r1,
            &r2,
        );
        assert_eq!(got.is_err(), want_err, "{path}: {got:?}");
        checked += 1;
    }
    assert!(checked > 150, "only {checked} proof vectors ran");
}

#[test]
fn c2sp_signed_note_example_verifies() {
    let v = vectors("signed-note.json");
    let verifier = Verifier::parse(v["verifier_key"].as_str().unwrap()).unwrap();
    assert_eq!(verifier.to_string(), v["verifier_key"].as_str().unwrap());
    let note = Note::parse(v["signed_note"].as_str().unwrap()).unwrap();
    assert_eq!(
        note.verify(&verifier).unwrap(),
        "This is an example message.\n"
    );
}

#[test]
fn c2sp_checkpoint_example_parses() {
    let v = vectors("c2sp_examples.json");
    let case = &v["parse_only"][1];
    let note = Note::parse(case["signed_note"].as_str().unwrap()).unwrap();
    let cp = Checkpoint::parse_text(&note.text).unwrap();
    assert_eq!(cp.origin, case["origin"].as_str().unwrap());
    assert_eq!(cp.size, case["tree_size"].as_u64().unwrap());
    assert_eq!(cp.root.to_vec(), b(&case["root_hash_b64"]));
    assert_eq!(note.signatures[0].name, cp.origin);
}

#[test]
fn go_sumdb_note_vectors_sign_byte_for_byte_and_verify() {
    let v = vectors("go_sumdb_note.json");
    let peter = &v["peter"];
    let seed = hex_decode(peter["seed_hex"].as_str().unwrap()).unwrap();
    let key = SigningKey::from_seed(&seed).unwrap();
    let pv = Verifier::parse(peter["vkey"].as_str().unwrap()).unwrap();
    assert_eq!(pv.key, key.public());
    assert_eq!(
        format!("{:08x}", pv.id),
        peter["keyid_hex"].as_str().unwrap()
    );
    // Ed25519 is deterministic: our note is the published one, byte for byte.
    let signed = sign(peter["text"].as_str().unwrap(), "PeterNeumann", &key).unwrap();
    assert_eq!(signed, peter["signed_note"].as_str().unwrap());

    let enoch = Verifier::parse(v["enoch"]["vkey"].as_str().unwrap()).unwrap();
    let verifiers = |names: &serde_json::Value| -> Vec<Verifier> {
        names
            .as_array()
            .unwrap()
            .iter()
            .map(|n| match n.as_str().unwrap() {
                "peter" => pv.clone(),
                _ => enoch.clone(),
            })
            .collect()
    };
    for case in v["open_cases"].as_array().unwrap() {
        let msg = case["msg"].as_str().unwrap();
        let expect = case["expect"].as_str().unwrap();
        let vs = verifiers(&case["verifiers"]);
        let result = Note::parse(msg).and_then(|n| {
            if vs.is_empty() {
                return Err(NoteError::Unsigned("no trusted key".into()));
            }
            for ver in &vs {
                n.verify(ver)?;
            }
            Ok(())
        });
        assert_eq!(result.is_ok(), expect == "ok", "{expect}: {result:?}");
    }
    for msg in v["malformed_notes"].as_array().unwrap() {
        assert!(
            Note::parse(msg.as_str().unwrap()).is_err(),
            "accepted malformed note {msg}"
        );
    }
    for key in v["bad_vkeys"].as_array().unwrap() {
        assert!(Verifier::parse(key.as_str().unwrap()).is_err(), "{key}");
    }
}
