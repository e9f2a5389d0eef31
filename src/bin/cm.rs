fn main() {
    claudemesh::cli::main(&claudemesh::tools::cm::TOOL, claudemesh::tools::cm::run)
}
