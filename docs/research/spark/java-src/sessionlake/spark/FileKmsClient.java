package sessionlake.spark;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.crypto.KeyAccessDeniedException;
import org.apache.parquet.crypto.keytools.KmsClient;

/**
 * Experiment-only KMS client: unwrapKey looks the wrappedDEK up in a local TSV file
 * (wrappedDEK TAB base64(dataKey)), named by the Hadoop property sessionlake.kms.keys.file.
 * Every call is logged to stderr so the experiment shows which keys parquet-java asks for.
 */
public class FileKmsClient implements KmsClient {
  private final Map<String, byte[]> keys = new HashMap<>();

  @Override
  public void initialize(Configuration conf, String kmsInstanceID, String kmsInstanceURL, String accessToken)
      throws KeyAccessDeniedException {
    String path = conf.getTrimmed("sessionlake.kms.keys.file");
    System.err.println("[FileKmsClient] initialize id=" + kmsInstanceID + " url=" + kmsInstanceURL
        + " token=" + accessToken + " keys=" + path);
    if (path == null || path.isEmpty()) {
      throw new KeyAccessDeniedException("sessionlake.kms.keys.file is not set");
    }
    try {
      for (String line : Files.readAllLines(Paths.get(path), StandardCharsets.UTF_8)) {
        String[] parts = line.split("\t");
        if (parts.length == 2) keys.put(parts[0], Base64.getDecoder().decode(parts[1]));
      }
    } catch (IOException e) {
      throw new KeyAccessDeniedException("cannot read " + path + ": " + e, e);
    }
  }

  @Override
  public String wrapKey(byte[] keyBytes, String masterKeyIdentifier) throws KeyAccessDeniedException {
    throw new UnsupportedOperationException("sessionlake's lake is written by sessionlake only");
  }

  @Override
  public byte[] unwrapKey(String wrappedKey, String masterKeyIdentifier) throws KeyAccessDeniedException {
    String record = new String(Base64.getDecoder().decode(wrappedKey), StandardCharsets.UTF_8);
    System.err.println("[FileKmsClient] unwrapKey master=" + masterKeyIdentifier + " record=" + record);
    byte[] key = keys.get(wrappedKey);
    if (key == null) {
      throw new KeyAccessDeniedException("key " + masterKeyIdentifier + ": wrapped key not in the keys file");
    }
    return key.clone();
  }
}
