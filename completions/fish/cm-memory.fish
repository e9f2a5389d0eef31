# fish completion for cm-memory

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-memory -f
complete -c cm-memory -s h -l help -d 'print this help'
complete -c cm-memory -l version -d 'print the version'
complete -c cm-memory -l json -d 'write JSON Lines: one object per line'
complete -c cm-memory -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-memory -n __fish_use_subcommand -a remember -d 'store a note'
complete -c cm-memory -n __fish_use_subcommand -a add -d 'store a note'
complete -c cm-memory -n __fish_use_subcommand -a recall -d 'find notes, best match first'
complete -c cm-memory -n __fish_use_subcommand -a search -d 'find notes, best match first'
complete -c cm-memory -n __fish_use_subcommand -a forget -d 'remove a note from search'
complete -c cm-memory -n __fish_use_subcommand -a rm -d 'remove a note from search'
complete -c cm-memory -n '__fish_seen_subcommand_from remember add' -s t -l tag -x -d 'a tag for the note (repeat for more)'
complete -c cm-memory -n '__fish_seen_subcommand_from recall search' -s n -l limit -x -d 'at most N notes, default 20'
