fn main() {
    claudemesh::cli::main(&claudemesh::tools::id::TOOL, claudemesh::tools::id::run)
}
