fn main() {
    claudemesh::cli::main(&claudemesh::tools::profile::TOOL)
}
