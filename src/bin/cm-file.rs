fn main() {
    claudemesh::cli::main(&claudemesh::tools::file::TOOL)
}
