fn main() {
    claudemesh::cli::main(&claudemesh::tools::up::TOOL, claudemesh::tools::up::run)
}
