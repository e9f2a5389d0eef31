# fish completion for cm-context

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-context -f
complete -c cm-context -s h -l help -d 'print this help'
complete -c cm-context -l version -d 'print the version'
complete -c cm-context -l json -d 'write JSON Lines: one object per line'
complete -c cm-context -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-context -n __fish_use_subcommand -a share -d 'share this session\'s context, replacing its earlier one'
complete -c cm-context -n __fish_use_subcommand -a set -d 'share this session\'s context, replacing its earlier one'
complete -c cm-context -n __fish_use_subcommand -a get -d 'the contexts that mention a word or carry a tag'
complete -c cm-context -n __fish_use_subcommand -a search -d 'the contexts that mention a word or carry a tag'
complete -c cm-context -n __fish_use_subcommand -a find -d 'the contexts that mention a word or carry a tag'
complete -c cm-context -n __fish_use_subcommand -a list -d 'every context of the mesh, newest first'
complete -c cm-context -n __fish_use_subcommand -a ls -d 'every context of the mesh, newest first'
complete -c cm-context -n '__fish_seen_subcommand_from share set' -l files -x -d 'files this session read, separated by commas (repeat for more)'
complete -c cm-context -n '__fish_seen_subcommand_from share set' -l findings -x -d 'key findings, separated by commas (repeat for more)'
complete -c cm-context -n '__fish_seen_subcommand_from share set' -s f -l finding -x -d 'one key finding, commas and all (repeat for more)'
complete -c cm-context -n '__fish_seen_subcommand_from share set' -s t -l tags -x -d 'tags, separated by commas (repeat for more)'
