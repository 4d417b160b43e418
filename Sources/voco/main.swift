import VoCoCommands

VoCoCommand.main()
