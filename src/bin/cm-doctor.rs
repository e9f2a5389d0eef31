fn main() {
    claudemesh::cli::main(&claudemesh::tools::doctor::TOOL)
}
