//! Several `seal` processes on one store: builds queue on the store lock and all succeed;
//! identical builds agree on one digest.

mod common;

use std::process::{Child, Stdio};

use common::{Ctx, Seal};

fn spawn_build(seal: &Seal, ctx: &Ctx, tag: &str) -> Child {
    seal.command()
        .current_dir(ctx.path())
        .args(["build", "--progress", "plain", "-t", tag, "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn seal")
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().expect("wait for seal");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a concurrent build failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn four_different_builds_on_one_store_all_succeed() {
    let seal = Seal::new();
    let contexts: Vec<Ctx> = (0..4)
        .map(|i| {
            let ctx = Ctx::new();
            for f in 0..50 {
                ctx.file(
                    &format!("data/f{f}"),
                    format!("build {i} file {f}\n").repeat(100),
                );
            }
            ctx.kubefile(&format!(
                "FROM scratch\nCOPY data d{i}\nRUN echo {i} > marker\nLABEL n={i}\n"
            ));
            ctx
        })
        .collect();
    let children: Vec<Child> = contexts
        .iter()
        .enumerate()
        .map(|(i, c)| spawn_build(&seal, c, &format!("app{i}:1")))
        .collect();
    let digests: Vec<String> = children.into_iter().map(finish).collect();
    let mut unique = digests.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "four different images: {digests:?}");
    let images = seal.run_in(contexts[0].path(), &["images", "--format", "json"]);
    for i in 0..4 {
        assert!(
            images
                .stdout
                .contains(&format!("docker.io/sealerio/app{i}:1")),
            "{}",
            images.stdout
        );
    }
}

#[test]
fn four_identical_builds_agree_on_one_digest() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    for f in 0..50 {
        ctx.file(&format!("data/f{f}"), format!("file {f}\n").repeat(100));
    }
    ctx.kubefile("FROM scratch\nCOPY data d\nRUN echo same > marker\n");
    let children: Vec<Child> = (0..4).map(|_| spawn_build(&seal, &ctx, "same:1")).collect();
    let digests: Vec<String> = children.into_iter().map(finish).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    // The store holds one copy of each blob however many builds raced.
    let again = seal.build_ok(ctx.path(), "same:1", &[]);
    assert_eq!(again.digest(), digests[0]);
    assert_eq!(again.summary().executed, 0, "{}", again.stderr);
}
