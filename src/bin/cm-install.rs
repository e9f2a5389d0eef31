fn main() {
    claudemesh::cli::main(&claudemesh::tools::install::TOOL)
}
