//! Compile errors of `#[cached]` and `#[invalidate]`: each `ui/*.rs` must fail
//! to compile with exactly the message in its `.stderr`. Regenerate after a
//! deliberate change with `TRYBUILD=overwrite cargo test -p integration-tests --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
