fn main() {
    claudemesh::cli::main(&claudemesh::tools::peers::TOOL)
}
