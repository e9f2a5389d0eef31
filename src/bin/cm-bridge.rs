fn main() {
    claudemesh::cli::main(&claudemesh::tools::bridge::TOOL)
}
