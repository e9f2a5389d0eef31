fn main() {
    claudemesh::multicall::main()
}
