# fish completion for cm-reserve

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-reserve -f
complete -c cm-reserve -s x -l exclusive -d 'nobody else may reserve these paths, and their commits touching them are refused'
complete -c cm-reserve -l ttl -x -d 'how long the reservation lasts: 30m, 1h (the default), 2d'
complete -c cm-reserve -s r -l reason -x -d 'what you are doing, shown to whoever runs into it'
complete -c cm-reserve -l repo -x -d 'the repository\'s scope, when not the one here (see cm-reserve list --all)'
complete -c cm-reserve -s h -l help -d 'print this help'
complete -c cm-reserve -l version -d 'print the version'
complete -c cm-reserve -l json -d 'write JSON Lines: one object per line'
complete -c cm-reserve -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-reserve -n __fish_use_subcommand -a list -d 'the live reservations of this repository (--all: of the mesh)'
complete -c cm-reserve -n __fish_use_subcommand -a ls -d 'the live reservations of this repository (--all: of the mesh)'
complete -c cm-reserve -n __fish_use_subcommand -a release -d 'release your reservations of these patterns, or all of yours here'
complete -c cm-reserve -n __fish_use_subcommand -a check -d 'exit 13 if another member holds one of the paths (or the staged ones) exclusively'
complete -c cm-reserve -n __fish_use_subcommand -a hook -d 'install or uninstall the pre-commit hook'
complete -c cm-reserve -n 'not __fish_seen_subcommand_from list ls release check hook' -F
complete -c cm-reserve -n '__fish_seen_subcommand_from list ls' -s a -l all -d 'list: every repository\'s reservations in the mesh'
complete -c cm-reserve -n '__fish_seen_subcommand_from release' -F
complete -c cm-reserve -n '__fish_seen_subcommand_from check' -l hook -d 'check: as the pre-commit hook does; a broker out of reach warns and lets the commit through'
complete -c cm-reserve -n '__fish_seen_subcommand_from check' -F
complete -c cm-reserve -n '__fish_seen_subcommand_from hook' -a 'install uninstall'
