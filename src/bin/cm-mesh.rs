fn main() {
    claudemesh::cli::main(&claudemesh::tools::mesh::TOOL, claudemesh::tools::mesh::run)
}
