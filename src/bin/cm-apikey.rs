fn main() {
    claudemesh::cli::main(
        &claudemesh::tools::apikey::TOOL,
        claudemesh::tools::apikey::run,
    )
}
