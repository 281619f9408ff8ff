//! Arbitrary bytes for the JSON reader of OCI bundles: no panic, one-line
//! errors at an offset inside the input, and the same answer as serde_json.
//! Wherever serde_json reads a value that has no duplicate key and nests at
//! most 64 deep, ours reads the same value (kinds, strings, key order,
//! integers, floats to within an ulp); wherever ours reads a value, serde_json
//! does too, unless a number is beyond f64 (serde_json's "number out of
//! range"; ours keeps the literal text).
#![no_main]

use std::collections::HashSet;
use std::fmt;

use libfuzzer_sys::fuzz_target;
use microbox::oci::json::{self, Value};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// serde_json's reading, with object members kept in order and duplicates kept.
#[derive(Debug)]
enum Tree {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
        Ok(Tree::U64(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree::I64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
        Ok(Tree::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree::Str(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(Tree::Object(members))
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tree, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

fn depth(tree: &Tree) -> usize {
    match tree {
        Tree::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Tree::Object(members) => 1 + members.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        _ => 0,
    }
}

fn has_duplicate_key(tree: &Tree) -> bool {
    match tree {
        Tree::Array(items) => items.iter().any(has_duplicate_key),
        Tree::Object(members) => {
            let mut keys = HashSet::new();
            members.iter().any(|(k, _)| !keys.insert(k.as_str()))
                || members.iter().any(|(_, v)| has_duplicate_key(v))
        }
        _ => false,
    }
}

/// The same value, as far as the two readers can be compared: floats are not,
/// since serde_json rounds them and ours keeps the text.
fn assert_same(ours: &Value, theirs: &Tree) {
    match (ours, theirs) {
        (Value::Null, Tree::Null) => {}
        (Value::Bool(a), Tree::Bool(b)) => assert_eq!(a, b),
        (Value::String(a), Tree::Str(b)) => assert_eq!(a, b),
        (Value::Number(n), Tree::U64(b)) => assert_eq!(n.as_u64(), Some(*b), "{n:?}"),
        (Value::Number(n), Tree::I64(b)) => assert_eq!(n.as_i64(), Some(*b), "{n:?}"),
        (Value::Number(n), Tree::F64(b)) => {
            // serde_json reads "-0" as a float; any other integer it reads as one
            // is beyond 64 bits.
            let is_zero = n.text() == "-0";
            assert!(
                is_zero || n.as_u64().is_none() && n.as_i64().is_none(),
                "{n:?}"
            );
            // Rust rounds exactly; serde_json (without float_roundtrip) may be an
            // ulp off.
            let a: f64 = n.text().parse().expect("a JSON number is a Rust float");
            let tolerance = b.abs() * 1e-15 + f64::MIN_POSITIVE;
            assert!((a - b).abs() <= tolerance, "{n:?}: {a} vs {b}");
        }
        (Value::Array(a), Tree::Array(b)) => {
            assert_eq!(a.len(), b.len());
            a.iter().zip(b).for_each(|(x, y)| assert_same(x, y));
        }
        (Value::Object(a), Tree::Object(b)) => {
            assert_eq!(a.len(), b.len());
            for ((ka, va), (kb, vb)) in a.iter().zip(b) {
                assert_eq!(ka, kb);
                assert_same(va, vb);
            }
        }
        _ => panic!("ours {ours:?}, serde_json {theirs:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let ours = microbox::oci::json_parse(data);
    let theirs = serde_json::from_slice::<Tree>(data);
    match (&ours, &theirs) {
        (Ok(value), Ok(tree)) => {
            assert!(depth(tree) <= json::MAX_DEPTH, "{tree:?}");
            assert!(!has_duplicate_key(tree), "{tree:?}");
            assert_same(value, tree);
        }
        (Ok(value), Err(e)) => {
            let e = e.to_string();
            assert!(e.starts_with("number out of range"), "{value:?}: {e}");
        }
        (Err(e), Ok(tree)) => {
            assert!(
                depth(tree) > json::MAX_DEPTH || has_duplicate_key(tree),
                "{e}: {tree:?}"
            );
        }
        (Err(_), Err(_)) => {}
    }
    if let Err(e) = &ours {
        assert!(e.offset <= data.len(), "{e}");
        let line = e.to_string();
        assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
    }
});
