fn main() {
    claudemesh::cli::main(&claudemesh::tools::cm::TOOL)
}
