fn main() {
    claudemesh::cli::main(&claudemesh::tools::pipe::TOOL, claudemesh::tools::pipe::run)
}
