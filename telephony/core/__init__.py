"""What every feature shares and none owns: the project's error base, labelled enums, durable
confined files, the watched file, and the loop behind background services."""
