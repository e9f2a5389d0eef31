# fish completion for cm

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm -f
complete -c cm -n __fish_use_subcommand -l list -d 'print the names of the tools this cm is, one a line'
complete -c cm -n __fish_use_subcommand -s h -l help -d 'print this help'
complete -c cm -n __fish_use_subcommand -l version -d 'print the version'
complete -c cm -n __fish_use_subcommand -l json -d 'write JSON Lines: one object per line'
complete -c cm -n __fish_use_subcommand -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm -n '__fish_use_subcommand' -a 'new create invite share join add list ls use rename leave members member mesh peers peer send inbox state remember recall forget memory remind schedule profile topic notifications notification notify apikey api-key bridge file doctor status whoami register login logout id install uninstall launch connect pipe mcp up down broker help links'
complete -c cm -n 'not __fish_use_subcommand' -F
