//! Compiles the `.proto` files with protox (pure Rust), so the build needs no
//! system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/tusk/dfs.proto",
        "proto/tusk/namenode_storage.proto",
        "proto/tusk/bench.proto",
        "proto/tusk/compute.proto",
        "proto/tusk/metastore.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .bytes(".tusk.bench")
        .bytes(".tusk.compute.MapOutputChunk")
        .compile_fds(fds)?;
    Ok(())
}
