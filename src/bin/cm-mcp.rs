fn main() {
    claudemesh::cli::main(&claudemesh::tools::mcp::TOOL, claudemesh::tools::mcp::run)
}
