package io.nudgestream.connect.dynamodb;

import org.apache.kafka.connect.errors.DataException;

/** A record that can never be written as it is: it goes to the dead-letter topic, the task carries on. */
public class InvalidScoreRecordException extends DataException {
    public InvalidScoreRecordException(String message) {
        super(message);
    }

    public InvalidScoreRecordException(String message, Throwable cause) {
        super(message, cause);
    }
}
