# fish completion for cm-id

complete -c cm-id -f
complete -c cm-id -s h -l help -d 'print this help'
complete -c cm-id -l version -d 'print the version'
complete -c cm-id -l json -d 'write JSON Lines: one object per line'
complete -c cm-id -n __fish_use_subcommand -a register -d 'make the local identity (an ed25519 key pair)'
complete -c cm-id -n __fish_use_subcommand -a whoami -d 'show your public key, joined meshes and broker logins'
complete -c cm-id -n __fish_use_subcommand -a show -d 'show your public key, joined meshes and broker logins'
complete -c cm-id -n __fish_use_subcommand -a login -d 'record a broker, its token and its CA file, as the default'
complete -c cm-id -n __fish_use_subcommand -a logout -d 'forget the login to URL, or every login'
complete -c cm-id -n '__fish_seen_subcommand_from register' -l name -x -d 'the display name peers see'
complete -c cm-id -n '__fish_seen_subcommand_from register' -l force -d 'replace an existing identity with a new key'
complete -c cm-id -n '__fish_seen_subcommand_from login' -l token -x -d 'the broker\'s admin or creation token'
complete -c cm-id -n '__fish_seen_subcommand_from login' -l ca-file -r -F -d 'trust the CAs in this PEM file for the broker\'s TLS certificate (a private CA, or the certificate itself)'
