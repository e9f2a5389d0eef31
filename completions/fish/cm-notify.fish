# fish completion for cm-notify

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-notify -f
complete -c cm-notify -s h -l help -d 'print this help'
complete -c cm-notify -l version -d 'print the version'
complete -c cm-notify -l json -d 'write JSON Lines: one object per line'
complete -c cm-notify -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-notify -n __fish_use_subcommand -a list -d 'list unread mentions (with --all, every one)'
complete -c cm-notify -n __fish_use_subcommand -a ls -d 'list unread mentions (with --all, every one)'
complete -c cm-notify -n __fish_use_subcommand -a read -d 'mark mentions read: these ids, or all of them'
complete -c cm-notify -n __fish_use_subcommand -a clear -d 'mark mentions read: these ids, or all of them'
complete -c cm-notify -n '__fish_seen_subcommand_from list ls' -l all -d 'include mentions already read'
