fn main() {
    claudemesh::cli::main(&claudemesh::tools::file::TOOL, claudemesh::tools::file::run)
}
