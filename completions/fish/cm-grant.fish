# fish completion for cm-grant

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

function __claudemesh_peers
    cm-peers --json 2>/dev/null | awk -F'"name":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-grant -f
complete -c cm-grant -s h -l help -d 'print this help'
complete -c cm-grant -l version -d 'print the version'
complete -c cm-grant -l json -d 'write JSON Lines: one object per line'
complete -c cm-grant -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-grant -n __fish_use_subcommand -a grant -d 'allow capabilities to a member, or to everyone (*)'
complete -c cm-grant -n __fish_use_subcommand -a allow -d 'allow capabilities to a member, or to everyone (*)'
complete -c cm-grant -n __fish_use_subcommand -a revoke -d 'refuse capabilities (all when none is named) to a member, or to everyone (*)'
complete -c cm-grant -n __fish_use_subcommand -a deny -d 'refuse capabilities (all when none is named) to a member, or to everyone (*)'
complete -c cm-grant -n __fish_use_subcommand -a block -d 'hear nothing from a member'
complete -c cm-grant -n __fish_use_subcommand -a unblock -d 'lift a block; the member\'s grants stay'
complete -c cm-grant -n __fish_use_subcommand -a list -d 'what everyone may do, then each member you decided something about'
complete -c cm-grant -n __fish_use_subcommand -a ls -d 'what everyone may do, then each member you decided something about'
complete -c cm-grant -n __fish_use_subcommand -a grants -d 'what everyone may do, then each member you decided something about'
complete -c cm-grant -n '__fish_seen_subcommand_from grant allow' -a '(__claudemesh_peers)'
complete -c cm-grant -n '__fish_seen_subcommand_from grant allow' -a 'dm broadcast now files all'
complete -c cm-grant -n '__fish_seen_subcommand_from revoke deny' -a '(__claudemesh_peers)'
complete -c cm-grant -n '__fish_seen_subcommand_from revoke deny' -a 'dm broadcast now files all'
complete -c cm-grant -n '__fish_seen_subcommand_from block' -a '(__claudemesh_peers)'
complete -c cm-grant -n '__fish_seen_subcommand_from unblock' -a '(__claudemesh_peers)'
