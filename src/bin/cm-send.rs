fn main() {
    claudemesh::cli::main(&claudemesh::tools::send::TOOL, claudemesh::tools::send::run)
}
