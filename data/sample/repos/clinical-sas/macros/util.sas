/* Stop with an error when KEY does not identify the rows of DS uniquely. */
%macro check_unique(ds=, key=);
    proc sql noprint;
        select count(*) - count(distinct &key) into :dups trimmed from &ds;
    quit;
    %if &dups > 0 %then %do;
        %put ERROR: &dups duplicate value(s) of &key in &ds;
        %abort cancel;
    %end;
%mend check_unique;
