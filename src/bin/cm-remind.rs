fn main() {
    claudemesh::cli::main(&claudemesh::tools::remind::TOOL)
}
